"""The course as a website (make site): the executed lessons of both editions, built by Sphinx with myst-nb and
sphinx-book-theme in their own environment (.venv-site, requirements/site.lock), offline, into build/site.

The lessons are not executed again: the site is made from the executed copies in build/notebooks (English) and
build/notebooks/zh (Chinese) that `make notebooks` and the test suite write (`python -m course_lib site` executes
first only a lesson with no executed copy, or one older than its source). A widget has no kernel on a static page:
its view is replaced by a note saying where it runs, next to the figure the lesson showed when it ran (the runner
keeps that figure as the cell's own output). `python -m http.server -d build/site` serves the site to a classroom.
"""

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Dict, List, Sequence

import nbformat

from .config import REPO_ROOT
from .lessons import LESSONS, edition_dir

SITE_PYTHON = REPO_ROOT / ".venv-site" / "bin" / "python"
CONF_DIR = REPO_ROOT / "configs" / "site"
EXECUTED_DIR = REPO_ROOT / "build" / "notebooks"
SOURCE_DIR = REPO_ROOT / "build" / "site-src"
SITE_DIR = REPO_ROOT / "build" / "site"
GLOSSARY = REPO_ROOT / "translations" / "zh_CN" / "GLOSSARY.md"
LANGS = ("en", "zh")
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_NOTE = {
    "en": "*An interactive widget: it needs a running kernel. Run this lesson in JupyterLab (`make course`) to use "
    "it; the figure shown is what it drew when the lesson was run.*",
    "zh": "*这里是一个交互小部件，需要运行中的内核才能使用。在 JupyterLab 里运行本课"
    "（`make course LANG=zh`）就能拖动它；图中显示的是执行本课时它画出的结果。*",
}
INDEX = {
    "en": (
        "# Multimodal LLMs, hands on\n\n"
        "The course's lessons as they ran: every output, plot and exercise answer in place. Read them here; to run a "
        "lesson yourself (its widgets, your own questions), set up the kit and start `make course`.\n\n"
        "Each lesson's first output says the mode and device it ran in (tiny mode: a small InternVL2-shaped model the "
        "kit builds itself, on a CPU, offline).\n"
    ),
    "zh": (
        "# 多模态大模型动手实践\n\n"
        "这里是课程各课执行后的样子：每个输出、每张图、每道练习的答案都在原处。可以直接在这里阅读；想自己运行某一课"
        "（拖动交互小部件、问自己的问题），请装好课程套件，运行 `make course LANG=zh`。\n\n"
        "每一课的第一个输出写明了它运行时的模式和设备（tiny 模式：课程套件自己构建的小型 InternVL2 结构模型，"
        "在 CPU 上离线运行）。\n"
    ),
}
TOC_CAPTION = {"en": "Lessons", "zh": "课程"}
APP_NOTE = {
    "en": "*The Gradio demo ran here, in the notebook, while the lesson ran; it needs its server. Run this lesson in "
    "JupyterLab (`make course`), or the demo on its own (`make demo`).*",
    "zh": "*执行本课时，Gradio 演示就在这里的 notebook 里运行；它需要自己的服务端。在 JupyterLab 里运行本课"
    "（`make course LANG=zh`），或者单独启动演示（`make demo LANG=zh`）。*",
}


class SiteError(RuntimeError):
    """The site cannot be built; the message says what to do."""


def lesson_sources(lang: str) -> List[Path]:
    folder = edition_dir(lang)
    return [folder / lesson.notebook for lesson in LESSONS if (folder / lesson.notebook).is_file()]


def executed_folder(lang: str, executed_dir: Path = EXECUTED_DIR) -> Path:
    return Path(executed_dir) / ("zh" if lang == "zh" else "")


def stale_lessons(lang: str, executed_dir: Path = EXECUTED_DIR) -> List[Path]:
    """The lessons of an edition with no executed copy, one older than the lesson, or one whose run failed (python -m
    course_lib site executes them first)."""
    folder = executed_folder(lang, executed_dir)
    return [source for source in lesson_sources(lang) if not _up_to_date(folder / source.name, source)]


def _up_to_date(copy: Path, source: Path) -> bool:
    """An executed copy that is newer than its lesson and whose run did not fail (build_notebooks marks it)."""
    if not copy.is_file() or copy.stat().st_mtime < source.stat().st_mtime:
        return False
    return json.loads(copy.read_text(encoding="utf-8")).get("metadata", {}).get("course_run", {}).get("ok", True)


def executed_lessons(lang: str, executed_dir: Path = EXECUTED_DIR) -> List[Path]:
    """The executed copy of every lesson of an edition; a missing or stale one is an error naming the command."""
    stale = stale_lessons(lang, executed_dir)
    if stale:
        names = ", ".join(path.name for path in stale)
        folder = executed_folder(lang, executed_dir)
        raise SiteError(f"no up-to-date executed copy of {names} in {folder}: run `make notebooks LANG={lang}`")
    return [executed_folder(lang, executed_dir) / source.name for source in lesson_sources(lang)]


def static_notebook(path: Path, lang: str):
    """An executed lesson as the site shows it: each widget view, and each app shown in an iframe from the server
    the lesson started (gone once it ran), replaced by a note saying where it runs."""
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if WIDGET_VIEW in data and not data.get("text/plain", "").startswith("interactive("):
                output["data"] = {"text/plain": data.get("text/plain", "")}  # e.g. a progress bar: its last state
            elif WIDGET_VIEW in data:
                output["data"] = {"text/markdown": WIDGET_NOTE[lang]}
            elif "<iframe" in data.get("text/html", ""):
                output["data"] = {"text/markdown": APP_NOTE[lang]}
    notebook.metadata.pop("widgets", None)  # the widgets' state: nothing on a static page reads it
    return notebook


def search_words(glossary: Path = GLOSSARY) -> List[str]:
    """The glossary's Chinese terms (its first column, alternatives split), for the Chinese search's word list."""
    words = []
    for line in glossary.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not any("\u4e00" <= ch <= "\u9fff" for ch in cells[0]):
            continue
        for part in cells[0].replace("（", "/").replace("）", "/").replace("(", "/").replace(")", "/").split("/"):
            part = part.strip()
            if len(part) > 1 and all("\u4e00" <= ch <= "\u9fff" for ch in part) and part not in words:
                words.append(part)
    return words


def prepare_sources(lang: str, notebooks: Sequence[Path], source_dir: Path = SOURCE_DIR) -> Path:
    """The Sphinx source folder of an edition: its lessons, a start page with the lessons in course order, and for
    the Chinese edition the glossary (the lessons link to it) and the search's word list."""
    target = Path(source_dir) / lang
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for path in notebooks:
        nbformat.write(static_notebook(path, lang), target / path.name)
    pages = [Path(path).stem for path in notebooks]
    toc = "\n".join(["```{toctree}", f":caption: {TOC_CAPTION[lang]}", ":maxdepth: 1", "", *pages, "```", ""])
    if lang == "zh":
        shutil.copy(GLOSSARY, target / GLOSSARY.name)
        toc += "\n```{toctree}\n:caption: 参考\n:maxdepth: 1\n\nGLOSSARY\n```\n"
        words = search_words()
        (Path(source_dir) / "zh_search_dict.txt").write_text("".join(f"{w} 10 n\n" for w in words), encoding="utf-8")
    (target / "index.md").write_text(INDEX[lang] + "\n" + toc, encoding="utf-8")
    return target


def sphinx(lang: str, source_dir: Path = SOURCE_DIR, site_dir: Path = SITE_DIR) -> Dict[str, object]:
    """Run sphinx-build (in the site environment) for one edition; returns its time and warnings."""
    if not SITE_PYTHON.is_file():
        raise SiteError(f"the site environment ({SITE_PYTHON.parent.parent}) is not built: run `make site-env`")
    out = Path(site_dir) / lang
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "SITE_LANG": lang, "SITE_SOURCES": str(source_dir), "PYTHONWARNINGS": "ignore"}
    started = time.perf_counter()
    done = subprocess.run(
        [
            str(SITE_PYTHON),
            "-m",
            "sphinx",
            "-b",
            "html",
            "-q",
            "-c",
            str(CONF_DIR),
            str(Path(source_dir) / lang),
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    warnings = [line for line in done.stderr.splitlines() if "WARNING" in line or "ERROR" in line]
    if done.returncode != 0:
        raise SiteError(f"sphinx-build failed for the {lang} edition:\n{done.stderr[-3000:]}")
    return {"seconds": round(seconds, 1), "warnings": warnings}


def start_page(langs: Sequence[str]) -> str:
    links = " · ".join(
        f'<a href="{lang}/index.html" hreflang="{lang}">{"English" if lang == "en" else "中文"}</a>' for lang in langs
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Multimodal LLMs, hands on</title>\n'
        f'<meta http-equiv="refresh" content="0; url={langs[0]}/index.html"></head>\n'
        f"<body><p>{links}</p></body></html>\n"
    )


def build_site(
    langs: Sequence[str] = LANGS,
    executed_dir: Path = EXECUTED_DIR,
    source_dir: Path = SOURCE_DIR,
    site_dir: Path = SITE_DIR,
) -> Dict[str, object]:
    """Build the site of each edition whose lessons exist (the Chinese one once notebooks/zh has them); returns
    per edition its time, warnings and lessons, and the site's size in bytes."""
    langs = [lang for lang in langs if lesson_sources(lang)]
    report: Dict[str, object] = {}
    notebooks = {lang: executed_lessons(lang, executed_dir) for lang in langs}
    for lang in langs:
        prepare_sources(lang, notebooks[lang], source_dir)
    for lang in langs:
        report[lang] = {**sphinx(lang, source_dir, site_dir), "lessons": len(notebooks[lang])}
    (Path(site_dir) / "index.html").write_text(start_page(langs), encoding="utf-8")
    report["bytes"] = sum(path.stat().st_size for path in Path(site_dir).rglob("*") if path.is_file())
    (Path(site_dir) / "build.json").write_text(json.dumps(report, indent=1, ensure_ascii=False), encoding="utf-8")
    return report
