"""The Chinese edition cannot drift from the English: every markdown cell of every lesson has a finished
translation, the committed Chinese notebooks are exactly what the generator makes (code cells byte for byte), and
changing one English cell fails exactly that cell's translation until it is revised."""

import json
import os
import shutil
import subprocess

import nbformat
import pytest

from course_lib.lessons import LESSONS
from course_lib.translation import (
    CATALOGUE_DIR,
    ZH_NOTEBOOK_DIR,
    catalogue_path,
    chinese_notebook,
    problems,
    read_catalogue,
    set_translations,
    update_catalogue,
)


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda lesson: lesson.number)
def test_every_cell_of_the_lesson_is_translated_and_none_is_fuzzy_or_orphaned(lesson):
    left = problems(lesson.path)
    assert not left, "\n".join(map(str, left)) + "\n(make translations lists them; translate in the .po file)"


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda lesson: lesson.number)
def test_the_committed_chinese_lesson_is_what_the_generator_makes(lesson):
    committed = (ZH_NOTEBOOK_DIR / lesson.notebook).read_text(encoding="utf-8")
    assert committed == nbformat.writes(chinese_notebook(lesson.path)) + "\n", "run `make translations`"
    english, chinese = nbformat.read(lesson.path, as_version=4), nbformat.reads(committed, as_version=4)
    assert [c.id for c in english.cells] == [c.id for c in chinese.cells]
    for mine, theirs in zip(english.cells, chinese.cells):
        if mine.cell_type == "code":
            assert theirs.source == mine.source and theirs.metadata == mine.metadata
        else:
            assert any("\u4e00" <= ch <= "\u9fff" for ch in theirs.source), f"cell {mine.id} has no Chinese"
    assert (ZH_NOTEBOOK_DIR / "GLOSSARY.md").read_bytes() == (CATALOGUE_DIR / "GLOSSARY.md").read_bytes()


def test_nothing_else_is_in_the_chinese_lessons_folder():
    expected = {lesson.notebook for lesson in LESSONS} | {"GLOSSARY.md"}
    assert {path.name for path in ZH_NOTEBOOK_DIR.iterdir() if not path.name.startswith(".")} == expected


def lesson_copy(number, folder):
    """A lesson and its catalogue, copied to a folder of their own: (the notebook, the catalogue folder)."""
    lesson = next(lesson for lesson in LESSONS if lesson.number == number)
    notebook_path, catalogues = folder / lesson.notebook, folder / "zh_CN"
    shutil.copy(lesson.path, notebook_path)
    catalogues.mkdir()
    shutil.copy(catalogue_path(lesson.path), catalogues)
    return notebook_path, catalogues


def test_changing_one_english_cell_fails_exactly_that_cells_translation_until_it_is_revised(tmp_path):
    notebook_path, catalogues = lesson_copy("04", tmp_path)
    assert problems(notebook_path, catalogues) == []

    notebook = nbformat.read(notebook_path, as_version=4)
    edited = next(cell for cell in notebook.cells[1:] if cell.cell_type == "markdown")
    edited.source += "\n\nOne more English sentence."
    nbformat.write(notebook, notebook_path)
    found = problems(notebook_path, catalogues)
    assert [(p.cell_id, p.what.split(":")[0]) for p in found] == [
        (edited.id, "its English changed since it was translated")
    ]
    # The Chinese edition keeps that cell in English meanwhile; every other cell stays Chinese.
    chinese = chinese_notebook(notebook_path, catalogues)
    assert next(c for c in chinese.cells if c.id == edited.id).source == edited.source

    original = edited.source.removesuffix("\n\nOne more English sentence.")
    update_catalogue(notebook_path, catalogues)  # what `make translations` does: the entry becomes fuzzy
    po = catalogue_path(notebook_path, catalogues)
    entry = next(m for m in read_catalogue(po) if m.context == edited.id)
    assert entry.fuzzy and entry.id == edited.source and entry.previous_id == [original]  # what it was translated from
    text = po.read_text(encoding="utf-8")
    update_catalogue(notebook_path, catalogues)
    assert po.read_text(encoding="utf-8") == text  # running it again changes nothing
    assert "#| msgid " in text and "# |" not in text
    if shutil.which("msgfmt"):  # GNU gettext's own check, where it is installed
        done = subprocess.run(["msgfmt", "-c", "-o", os.devnull, str(po)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    assert [(p.cell_id, p.what.split(":")[0]) for p in problems(notebook_path, catalogues)] == [(edited.id, "fuzzy")]

    set_translations(notebook_path, {edited.id: entry.string + "\n\n再加一句中文。"}, catalogues)  # a translator
    assert problems(notebook_path, catalogues) == []


def test_a_removed_cell_leaves_an_obsolete_entry_and_a_new_cell_an_untranslated_one(tmp_path):
    notebook_path, catalogues = lesson_copy("03", tmp_path)
    notebook = nbformat.read(notebook_path, as_version=4)
    removed = next(cell for cell in notebook.cells[1:] if cell.cell_type == "markdown")
    notebook.cells.remove(removed)
    notebook.cells.append(nbformat.v4.new_markdown_cell("## A new section", id="03-new"))
    nbformat.write(notebook, notebook_path)
    assert {(p.cell_id, p.what.split(":")[0]) for p in problems(notebook_path, catalogues)} == {
        (removed.id, "orphaned"),
        ("03-new", "new English cell, not in the catalogue"),
    }
    update_catalogue(notebook_path, catalogues)
    assert {(p.cell_id, p.what.split(" (")[0].split(":")[0]) for p in problems(notebook_path, catalogues)} == {
        (removed.id, "obsolete entry"),
        ("03-new", "untranslated"),
    }


def test_a_translation_must_keep_the_code_math_and_links_of_its_english(tmp_path):
    notebook_path, catalogues = lesson_copy("04", tmp_path)
    cell_id, english = next(
        (c.id, c.source) for c in nbformat.read(notebook_path, as_version=4).cells if "`mlp1`" in c.source
    )
    set_translations(notebook_path, {cell_id: "没有代码的中文。"}, catalogues)
    [problem] = problems(notebook_path, catalogues)
    assert problem.cell_id == cell_id and "`mlp1`" in problem.what


def test_catalogues_are_standard_gettext_files():
    for lesson in LESSONS:
        catalog = read_catalogue(catalogue_path(lesson.path))
        assert catalog.locale.language == "zh" and catalog.locale.territory == "CN" and catalog.charset == "utf-8"
        text = catalogue_path(lesson.path).read_text(encoding="utf-8")
        assert text.count("\nmsgctxt ") == len(
            [c for c in nbformat.read(lesson.path, 4).cells if c.cell_type == "markdown"]
        )
    assert json.loads((ZH_NOTEBOOK_DIR / LESSONS[1].notebook).read_text(encoding="utf-8"))["nbformat"] == 4
    if shutil.which("msgfmt"):  # GNU gettext's own check (what Poedit runs), where it is installed
        for lesson in LESSONS:
            done = subprocess.run(
                ["msgfmt", "-c", "-o", os.devnull, str(catalogue_path(lesson.path))], text=True, capture_output=True
            )
            assert done.returncode == 0 and "warning" not in done.stderr, done.stderr
