"""The Chinese edition, made from the English lessons so the two cannot drift.

The English notebooks are the only source. Each lesson has a gettext catalogue, translations/zh_CN/<lesson>.po,
one entry per markdown cell: its context (msgctxt) is the cell's id, its msgid the cell's whole English text, its
msgstr the Chinese. `python -m course_lib translations` (make translations) brings the catalogues up to date with
the English (a new cell gets an empty entry; a changed cell's entry is marked fuzzy, keeping its old English as
`#| msgid` so a translator sees what changed; a removed cell's entry becomes obsolete) and writes the Chinese
notebooks, notebooks/zh/<lesson>.ipynb: the English notebook with each markdown cell's text replaced by its
translation and every code cell copied byte for byte. Poedit, Weblate or any gettext tool edits the catalogues.

`problems()` lists what stands between a catalogue and a finished edition (untranslated, fuzzy, changed English,
orphaned entries); the tests fail on any, and on a committed Chinese notebook that differs from `chinese_notebook`.
"""

import copy
import io
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, List, Optional

import nbformat
from babel.messages.catalog import Catalog, Message
from babel.messages.pofile import denormalize, normalize, read_po, write_po

from .config import REPO_ROOT
from .lessons import LESSONS, edition_dir

CATALOGUE_DIR = REPO_ROOT / "translations" / "zh_CN"
ZH_NOTEBOOK_DIR = edition_dir("zh")
GLOSSARY = CATALOGUE_DIR / "GLOSSARY.md"  # copied next to the Chinese lessons, which link to it
# Added below the first cell of every Chinese lesson (generated, so not in the catalogues).
ZH_NOTE = (
    "\n\n> 中文版：由英文课程和翻译目录 `translations/zh_CN/{catalogue}` 生成，代码与英文版逐字相同。"
    "术语见[术语表](GLOSSARY.md)。"
)


# What a translation keeps exactly as the English has it: code spans, fenced code, math, link targets.
# A code span may run over a line break (not a blank line), as markdown allows; its line breaks count as spaces.
KEPT = re.compile(r"```.*?```|`(?:[^`\n]|\n(?!\n))+`|\$\$.*?\$\$|\$(?:[^$\n]|\n(?!\n))+\$|\]\([^)\s]+\)", re.DOTALL)


def kept_pieces(text: str) -> List[str]:
    """The pieces of a markdown cell a translation must copy unchanged (code, math, link targets), sorted (their
    order may change); outside fenced code, a line break and a space are the same."""
    pieces = [piece if piece.startswith("```") else " ".join(piece.split()) for piece in KEPT.findall(text)]
    return sorted(pieces)


@dataclass(frozen=True)
class Problem:
    catalogue: Path
    cell_id: str
    what: str

    def __str__(self) -> str:
        where = self.catalogue.relative_to(REPO_ROOT) if self.catalogue.is_relative_to(REPO_ROOT) else self.catalogue
        return f"{where}, cell {self.cell_id}: {self.what}"


def catalogue_path(notebook: Path, catalogue_dir: Path = CATALOGUE_DIR) -> Path:
    return Path(catalogue_dir) / (Path(notebook).stem + ".po")


def markdown_cells(notebook) -> Dict[str, str]:
    """cell id -> English text of every markdown cell, in order."""
    cells = {}
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "markdown":
            continue
        if not cell.get("id"):
            raise ValueError(f"markdown cell {index} has no id; save the notebook with nbformat 4.5 or later")
        cells[cell.id] = cell.source
    return cells


def read_catalogue(path: Path) -> Catalog:
    with open(path, "rb") as handle:
        catalog = read_po(handle, locale="zh_CN", abort_invalid=True)
    # A fuzzy entry's old English is gettext's previous msgid ("#| msgid"): Babel keeps those lines as comments, and
    # does not read them as the previous msgid. _write_if_changed writes them; here they are read back.
    entries = _entries(catalog)
    for message in list(catalog) + list(catalog.obsolete.values()):
        message.user_comments = [comment for comment in message.user_comments if not comment.startswith("|")]
    for block in Path(path).read_text(encoding="utf-8").split("\n\n"):
        lines = block.splitlines()
        previous = [line[3:] for line in lines if line.startswith("#| ")]
        context = [line for line in lines if line.startswith("msgctxt ")]
        if previous and context and previous[0].startswith("msgid "):
            entry = entries.get(denormalize(context[0][len("msgctxt ") :]))
            if entry is not None:
                entry.previous_id = [denormalize("\n".join([previous[0][len("msgid ") :]] + previous[1:]))]
    return catalog


def _entries(catalog: Catalog) -> Dict[str, Message]:
    """cell id (msgctxt) -> entry, for the live entries (obsolete ones are in catalog.obsolete)."""
    return {message.context: message for message in catalog if message.id and message.context}


def update_catalogue(notebook_path: Path, catalogue_dir: Path = CATALOGUE_DIR) -> Path:
    """Bring a lesson's catalogue up to date with its English notebook (creating it the first time). Keeps every
    translation: a changed cell keeps its Chinese, marked fuzzy, with the English it was translated from as the
    previous msgid; a removed cell's entry becomes obsolete, and comes back if the cell does."""
    notebook = nbformat.read(notebook_path, as_version=4)
    path = catalogue_path(notebook_path, catalogue_dir)
    old = read_catalogue(path) if path.exists() else None
    catalog = Catalog(
        locale="zh_CN",
        project="multimodal-LLM course kit",
        version=Path(notebook_path).stem,
        copyright_holder="the course kit's authors",
        last_translator="the course kit's translators",
        creation_date=old.creation_date if old else datetime.now(timezone.utc),
        revision_date=old.revision_date if old else datetime.now(timezone.utc),
        fuzzy=False,
    )
    previous = _entries(old) if old else {}
    gone_before = {message.context: message for message in old.obsolete.values()} if old else {}
    cells = markdown_cells(notebook)
    for cell_id, english in cells.items():
        before = previous.get(cell_id) or gone_before.get(cell_id)
        if before is None or not before.string:
            catalog.add(english, "", context=cell_id)
        elif before.id == english:
            catalog.add(
                english,
                before.string,
                context=cell_id,
                flags=before.flags,
                previous_id=before.previous_id if before.fuzzy else (),
                user_comments=before.user_comments,
            )
        else:  # the English changed: keep the Chinese, fuzzy, and the English it was translated from
            translated_from = before.previous_id[0] if before.fuzzy and before.previous_id else before.id
            catalog.add(
                english,
                before.string,
                context=cell_id,
                flags={"fuzzy"},
                previous_id=translated_from,
                user_comments=before.user_comments,
            )
    for cell_id, gone in {**gone_before, **previous}.items():
        if cell_id not in cells and gone.string:
            catalog.obsolete[(gone.id, cell_id)] = gone
    _write_if_changed(path, catalog)
    return path


def _write_if_changed(path: Path, catalog: Catalog) -> None:
    """Write the catalogue (only if its text changes). Markdown is not a Python format string, whatever its % signs:
    no python-format flag. A fuzzy entry's previous msgid is written as gettext writes it, one "#|" line per line."""
    for message in list(catalog) + list(catalog.obsolete.values()):
        message.flags.discard("python-format")
    buffer = io.BytesIO()
    write_po(buffer, catalog, width=100, include_previous=False, sort_output=False)
    text = buffer.getvalue().decode("utf-8")
    for message in catalog:
        if message.id and message.context and message.previous_id:
            quoted = normalize(message.previous_id[0], width=0).split("\n")
            block = "\n".join(["#| msgid " + quoted[0]] + ["#| " + line for line in quoted[1:]])
            anchor = "msgctxt " + normalize(message.context, width=0) + "\n"
            text = text.replace(anchor, block + "\n" + anchor, 1)
    data = text.encode("utf-8")
    if not path.exists() or path.read_bytes() != data:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def problems(notebook_path: Path, catalogue_dir: Path = CATALOGUE_DIR) -> List[Problem]:
    """What keeps a lesson's Chinese edition from being finished, one Problem per cell."""
    path = catalogue_path(notebook_path, catalogue_dir)
    cells = markdown_cells(nbformat.read(notebook_path, as_version=4))
    if not path.exists():
        return [Problem(path, "*", "no catalogue yet: run `make translations`")]
    catalog = read_catalogue(path)
    entries = _entries(catalog)
    found = []
    for cell_id, english in cells.items():
        entry = entries.get(cell_id)
        if entry is None:
            found.append(Problem(path, cell_id, "new English cell, not in the catalogue: run `make translations`"))
        elif entry.id != english:
            found.append(
                Problem(
                    path,
                    cell_id,
                    "its English changed since it was translated: run `make translations`, then revise the fuzzy entry",
                )
            )
        elif not entry.string:
            found.append(Problem(path, cell_id, "untranslated"))
        elif entry.fuzzy:
            found.append(
                Problem(path, cell_id, "fuzzy: the English changed; revise the Chinese, then clear the fuzzy flag")
            )
        elif entry.string.endswith("\n") != english.endswith("\n"):
            found.append(Problem(path, cell_id, "ends with a line break where the English does not, or the reverse"))
        elif kept_pieces(entry.string) != kept_pieces(english):
            lost = sorted(set(kept_pieces(english)) ^ set(kept_pieces(entry.string)))
            found.append(
                Problem(
                    path,
                    cell_id,
                    f"code, math or a link differs from the English (copy them as they are): {', '.join(lost)[:300]}",
                )
            )
    for cell_id in entries.keys() - cells.keys():
        found.append(Problem(path, cell_id, "orphaned: no such markdown cell in the English lesson any more"))
    for _, cell_id in catalog.obsolete:
        found.append(Problem(path, cell_id, "obsolete entry (its cell was removed): delete it from the catalogue"))
    return found


def set_translations(notebook_path: Path, translations: Dict[str, str], catalogue_dir: Path = CATALOGUE_DIR) -> Path:
    """Fill in Chinese for some cells (cell id -> text) and clear their fuzzy flags: for a translator's script.
    Tools such as Poedit do the same by hand."""
    path = update_catalogue(notebook_path, catalogue_dir)
    catalog = read_catalogue(path)
    entries = _entries(catalog)
    unknown = sorted(set(translations) - set(entries))
    if unknown:
        raise KeyError(f"{path}: no entry for cell(s) {', '.join(unknown)}; known: {', '.join(entries)}")
    for cell_id, text in translations.items():
        entries[cell_id].string = text
        entries[cell_id].flags.discard("fuzzy")
        entries[cell_id].previous_id = ()
    _write_if_changed(path, catalog)
    return path


def chinese_notebook(notebook_path: Path, catalogue_dir: Path = CATALOGUE_DIR):
    """The Chinese lesson: markdown cells translated (a cell without a finished translation keeps its English),
    every code cell and all metadata as in the English notebook."""
    english = nbformat.read(notebook_path, as_version=4)
    path = catalogue_path(notebook_path, catalogue_dir)
    entries = _entries(read_catalogue(path)) if path.exists() else {}
    chinese = copy.deepcopy(english)
    first = True
    for cell in chinese.cells:
        if cell.cell_type != "markdown":
            continue
        entry = entries.get(cell.id)
        if entry is not None and entry.string and not entry.fuzzy and entry.id == cell.source:
            cell.source = entry.string
        if first:
            cell.source += ZH_NOTE.format(catalogue=path.name)
            first = False
    return chinese


def write_chinese_edition(
    notebooks: Optional[List[Path]] = None,
    out_dir: Path = ZH_NOTEBOOK_DIR,
    catalogue_dir: Path = CATALOGUE_DIR,
) -> List[Path]:
    """Update the catalogues and write the Chinese lessons (and the glossary beside them); returns what it wrote."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for notebook_path in notebooks or [lesson.path for lesson in LESSONS]:
        update_catalogue(notebook_path, catalogue_dir)
        target = out_dir / Path(notebook_path).name
        text = nbformat.writes(chinese_notebook(notebook_path, catalogue_dir)) + "\n"
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")
            written.append(target)
    glossary = Path(catalogue_dir) / GLOSSARY.name
    if glossary.exists() and (
        not (out_dir / glossary.name).exists() or (out_dir / glossary.name).read_bytes() != glossary.read_bytes()
    ):
        (out_dir / glossary.name).write_bytes(glossary.read_bytes())
        written.append(out_dir / glossary.name)
    return written
