"""How long each lesson takes: measured execution in tiny mode, the reading load, and a student time.

For every lesson notebook it reports
  * exec s     seconds to execute it headlessly in tiny mode with the exercises' solutions filled in
               (course_lib.notebooks.execute_notebook, as `make notebooks` does), in a fresh cache folder by
               default, so lessons 10 and 11 train and evaluate as on a student's first run;
  * words      words of markdown (fenced code excluded; a CJK character counts as half a word);
  * code lines non-blank lines of code to read (code cells, plus fenced code in markdown);
  * cells      code cells to run;
  * exercises  marked exercises (`# ---- your answer ... ----`), and how many of them write a function ("build it");
  * prompts    open questions in markdown ("Try it", "Explore", "Think", "Question", ...) that no exercise answers;
  * stated     the lesson's own "**Time**: about N minutes" line;
and turns them into a student time with the rule in RULE (printed with the table).

    .venv/bin/python scripts/lesson_times.py                       # execute all lessons, print the table
    .venv/bin/python scripts/lesson_times.py --json times.json     # ... and write the figures as JSON
    .venv/bin/python scripts/lesson_times.py --lessons 10 11       # execute only these (the table lists all)
    .venv/bin/python scripts/lesson_times.py --no-execute          # reading load only, in seconds
    .venv/bin/python scripts/lesson_times.py --reuse times.json --no-execute   # recompute from an earlier JSON
    .venv/bin/python scripts/lesson_times.py --mode real           # a teacher's dry run on the class GPU machine

The JSON is rewritten after every lesson, so an interrupted run keeps what it measured; --reuse with --lessons
executes those lessons and takes the others' seconds from the earlier JSON.
"""

import argparse
import json
import math
import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import nbformat  # noqa: E402

from course_lib.lessons import LESSONS  # noqa: E402

# The rule that turns the load into minutes for one student (English as a second language, tiny mode).
WORDS_PER_MINUTE = 80  # reading English prose as a second language
CODE_LINES_PER_MINUTE = 15  # reading code to see what a cell does (before running it)
MINUTES_PER_CELL = 0.5  # run a cell, look at its output or figure
MINUTES_PER_EXERCISE = 5  # a "your answer" exercise, with a hint or two
MINUTES_PER_BUILD_IT = 10  # an exercise that writes a function ("Build it"), instead of the 5
MINUTES_PER_PROMPT = 2  # an open "Try it" / "Explore" / "think about" question, answered in one's head or a line
RULE = (
    f"student minutes = markdown words / {WORDS_PER_MINUTE} + code lines / {CODE_LINES_PER_MINUTE} "
    f"+ {MINUTES_PER_CELL} per code cell + {MINUTES_PER_EXERCISE} per exercise that asks for values "
    f"({MINUTES_PER_BUILD_IT} for one that writes a function) + {MINUTES_PER_PROMPT} per open prompt "
    "+ execution time, rounded up to 5 minutes"
)

FENCE = re.compile(r"```.*?```", re.DOTALL)
CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
TIME_LINE = re.compile(r"\*\*Time\*\*:\s*about\s+(\d+)\s+minutes")
EXERCISE = re.compile(
    r"^# ---- your answer(?: \(\d\d[a-z]\))? ----$(.*?)^# ---- end of your answer ----$", re.MULTILINE | re.DOTALL
)
# Open questions: a bold lead-in such as **Try it**, **Explore**, **Think**, **Question**, or an "## Explore" section
# (a widget to play with). One that an exercise cell right after it answers is counted as that exercise, not twice.
PROMPT = re.compile(
    r"\*\*\s*(?:try it|try this|explore|think|question|questions|your turn|discuss)\b[^*\n]{0,12}\*\*"
    r"|^#+\s*(?:explore|try it|try this)\b",
    re.IGNORECASE | re.MULTILINE,
)


def words(text: str) -> float:
    cjk = len(CJK.findall(text))
    latin = len(CJK.sub(" ", text).split())
    return latin + cjk / 2


def reading_load(path: Path) -> dict:
    notebook = nbformat.read(path, as_version=4)
    md_words, code_lines, cells, exercises, build_its, prompts, stated = 0.0, 0, 0, 0, 0, 0, None
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "markdown":
            fenced = FENCE.findall(cell.source)
            md_words += words(FENCE.sub(" ", cell.source))
            code_lines += sum(1 for block in fenced for line in block.splitlines()[1:-1] if line.strip())
            following = notebook.cells[index + 1] if index + 1 < len(notebook.cells) else None
            answered_by_exercise = following is not None and EXERCISE.search(following.source) is not None
            prompts += 0 if answered_by_exercise else len(PROMPT.findall(FENCE.sub(" ", cell.source)))
            found = TIME_LINE.search(cell.source)
            if found and stated is None:
                stated = int(found.group(1))
        elif cell.cell_type == "code":
            cells += 1
            code_lines += sum(1 for line in cell.source.splitlines() if line.strip())
            for answer in EXERCISE.findall(cell.source):
                exercises += 1
                build_its += bool(re.search(r"^def ", answer, re.MULTILINE))
    return {
        "words": round(md_words),
        "code_lines": code_lines,
        "code_cells": cells,
        "exercises": exercises,
        "build_its": build_its,
        "prompts": prompts,
        "stated_minutes": stated,
    }


def student_minutes(load: dict, exec_seconds, core: bool = False) -> int:
    """The rule's minutes; core=True leaves out the "build it" exercises and the open prompts (a first pass)."""
    if core:
        load = {**load, "exercises": load["exercises"] - load["build_its"], "build_its": 0, "prompts": 0}
    minutes = (
        load["words"] / WORDS_PER_MINUTE
        + load["code_lines"] / CODE_LINES_PER_MINUTE
        + MINUTES_PER_CELL * load["code_cells"]
        + MINUTES_PER_EXERCISE * (load["exercises"] - load["build_its"])
        + MINUTES_PER_BUILD_IT * load["build_its"]
        + MINUTES_PER_PROMPT * load["prompts"]
        + (exec_seconds or 0) / 60
    )
    return 5 * math.ceil(minutes / 5)


def execute(path: Path, cache: Path, timeout: int, mode: str = "tiny"):
    from course_lib.notebooks import execute_notebook

    env = {"COURSE_MODE": mode, "MPLBACKEND": "Agg", "COURSE_CACHE_DIR": str(cache), "HF_HUB_OFFLINE": "1"}
    started = time.perf_counter()
    try:
        _, run = execute_notebook(path, timeout=timeout, env=env, solutions=True)
    except Exception as failure:  # a cell over --timeout, or an exercise without a solution while someone edits
        message = str(failure).strip().splitlines()[0] if str(failure).strip() else ""
        return time.perf_counter() - started, f"{type(failure).__name__}: {message}"[:300]
    return run.seconds, (run.error.strip().splitlines()[-1][:300] if run.error else None)


def prepare(cache: Path, mode: str = "tiny") -> None:
    """What `make course` does before JupyterLab starts (tiny checkpoint and food set), outside the timings."""
    import subprocess

    env = {**os.environ, "COURSE_MODE": mode, "COURSE_CACHE_DIR": str(cache), "HF_HUB_OFFLINE": "1"}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "course_lib", "build-tiny"], env=env, check=True, cwd=REPO)
    print(f"build-tiny in {cache}: {time.perf_counter() - started:.0f} s (not counted)", file=sys.stderr, flush=True)


def table(rows) -> str:
    head = (
        "| lesson | exec s | words | code lines | cells | exercises (build it) | prompts | stated min | student min "
        "| core min |\n"
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
    )
    lines = [head]
    total_stated = total_student = total_core = total_exec = 0
    for row in rows:
        exec_s = row.get("exec_seconds")
        cell = "-" if exec_s is None else f"{exec_s:.0f}" + (" (failed)" if row.get("error") else "")
        lines.append(
            f"| {row['lesson']} | {cell} | {row['words']} | {row['code_lines']} | {row['code_cells']} | "
            f"{row['exercises']} ({row['build_its']}) | {row['prompts']} | {row['stated_minutes']} | "
            f"{row['student_minutes']} | {row['core_minutes']} |"
        )
        total_stated += row["stated_minutes"] or 0
        total_student += row["student_minutes"]
        total_core += row["core_minutes"]
        total_exec += exec_s or 0
    lines.append(
        f"| total | {total_exec:.0f} | {sum(r['words'] for r in rows)} | {sum(r['code_lines'] for r in rows)} | "
        f"{sum(r['code_cells'] for r in rows)} | {sum(r['exercises'] for r in rows)} "
        f"({sum(r['build_its'] for r in rows)}) | "
        f"{sum(r['prompts'] for r in rows)} | {total_stated} | {total_student} | {total_core} |"
    )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lessons", nargs="*", help="lesson numbers, e.g. 00 10 (default: all)")
    parser.add_argument("--json", type=Path, help="write the figures here (rewritten after every lesson)")
    parser.add_argument("--reuse", type=Path, help="take execution seconds from this earlier JSON where present")
    parser.add_argument("--no-execute", action="store_true", help="reading load only")
    parser.add_argument(
        "--mode",
        default="tiny",
        help="COURSE_MODE for the runs: tiny (default), or real for a dry run on the class GPU",
    )
    parser.add_argument("--timeout", type=int, default=900, help="seconds per cell (default 900)")
    parser.add_argument("--cache", type=Path, help="COURSE_CACHE_DIR for the runs (default: a fresh temporary folder)")
    args = parser.parse_args(argv)

    lessons = [lesson for lesson in LESSONS if lesson.path.is_file()]
    to_run = {lesson.number for lesson in lessons if not args.lessons or lesson.number in args.lessons}
    earlier = {}
    if args.reuse and args.reuse.is_file():
        earlier = {row["lesson"]: row for row in json.loads(args.reuse.read_text())["lessons"]}
    cache = args.cache or Path(tempfile.mkdtemp(prefix="lesson-times-cache-"))
    if not args.no_execute:
        prepare(cache, args.mode)

    rows = []
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.node()}: {os.cpu_count()} CPU cores, {platform.machine()}, "
        f"Python {platform.python_version()}",
        "command": "nice -n 15 .venv/bin/python scripts/lesson_times.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "mode": args.mode,
        "rule": RULE,
        "cache": str(cache),
        "lessons": rows,
    }
    for lesson in lessons:
        row = {"lesson": lesson.number, "title": lesson.title, **reading_load(lesson.path)}
        before = earlier.get(lesson.number, {})
        if lesson.number in to_run and not args.no_execute:
            print(f"executing lesson {lesson.number} ...", file=sys.stderr, flush=True)
            row["exec_seconds"], row["error"] = execute(lesson.path, cache, args.timeout, args.mode)
            row["measured"] = report["date"]
            status = "FAILED: " + row["error"] if row["error"] else "ok"
            print(f"  lesson {lesson.number}: {status} ({row['exec_seconds'] or 0:.0f} s)", file=sys.stderr, flush=True)
        else:  # an earlier measurement, if any
            row["exec_seconds"] = before.get("exec_seconds")
            row["error"] = before.get("error")
            row["measured"] = before.get("measured")
        row["student_minutes"] = student_minutes(row, row["exec_seconds"])
        row["core_minutes"] = student_minutes(row, row["exec_seconds"], core=True)
        rows.append(row)
        if args.json:
            args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(table(rows))
    print(f"\nRule: {RULE}. Core: the same without the build-it exercises and the open prompts.")
    failed = [row["lesson"] for row in rows if row.get("error")]
    if failed:
        print(f"Failed lessons (their seconds are up to the failure): {', '.join(failed)}")
        for row in rows:
            if row.get("error"):
                print(f"  {row['lesson']}: {row['error']}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
