"""The kit speaks the lesson's language: every message shown through tr() has its Chinese, with the same
placeholders; the language comes from COURSE_LANG or the Chinese lessons' folder."""

import ast
import os

import pytest
from conftest import REPO_ROOT

from course_lib import i18n
from course_lib.i18n import normalise, placeholders, tr
from course_lib.zh import ZH

KIT = REPO_ROOT / "course_lib"


def _sources():
    """(name, Python source) of course_lib's modules and of the English lessons' code cells."""
    import nbformat

    for path in sorted(KIT.rglob("*.py")):
        yield str(path.relative_to(REPO_ROOT)), path.read_text(encoding="utf-8")
    for path in sorted((REPO_ROOT / "notebooks").glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "code" and "tr(" in cell.source:
                source = "\n".join(
                    line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!"))
                )
                yield f"{path.name} cell {cell.get('id')}", source


def _calls(names):
    found = []
    for name, source in _sources():
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) in names:
                found.append((f"{name}:{node.lineno}", node.args[0] if node.args else None))
    return found


def tr_calls():
    """(where, argument) of every message the kit shows: tr("...") calls and later("...") marks; tr(variable)
    shows a message marked with later() elsewhere."""
    return [(where, arg) for where, arg in _calls({"tr", "later"}) if not isinstance(arg, (ast.Name, ast.Attribute))]


def test_every_message_is_a_plain_string_with_its_chinese_and_the_same_placeholders():
    calls = tr_calls()
    assert len(calls) > 10
    not_literal = [where for where, arg in calls if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str))]
    assert not not_literal, f"tr() takes the English as a literal (placeholders, not an f-string): {not_literal}"
    missing = [(where, arg.value) for where, arg in calls if arg.value not in ZH]
    assert not missing, f"no Chinese in course_lib/zh for: {missing}"
    differing = [
        (english, sorted(placeholders(english) ^ placeholders(ZH[english])))
        for english in {arg.value for _, arg in calls}
        if placeholders(english) != placeholders(ZH[english])
    ]
    assert not differing, f"placeholders differ between the English and the Chinese: {differing}"


def test_no_chinese_entry_is_left_over_and_none_is_still_english():
    used = {arg.value for _, arg in tr_calls()}
    assert not set(ZH) - used, f"entries no tr() call uses any more: {sorted(set(ZH) - used)}"
    names = {"GPU", "XTuner"}  # the same in both languages
    untranslated = [english for english, chinese in ZH.items() if chinese.strip() == english.strip()]
    assert set(untranslated) <= names, f"Chinese entries still in English: {sorted(set(untranslated) - names)}"


def test_the_language_comes_from_course_lang_then_the_chinese_lessons_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("COURSE_LANG", raising=False)
    monkeypatch.chdir(tmp_path)
    assert i18n.language() == "en"
    monkeypatch.chdir(REPO_ROOT / "notebooks" / "zh")
    assert i18n.language() == "zh"
    monkeypatch.setenv("COURSE_LANG", "en")
    assert i18n.language() == "en"
    monkeypatch.setenv("COURSE_LANG", "zh_CN.UTF-8")
    monkeypatch.chdir(tmp_path)
    assert i18n.language() == "zh"
    assert [normalise(v) for v in ("zh", "zh-CN", "ZH_cn", "en", "en_US.UTF-8")] == ["zh", "zh", "zh", "en", "en"]
    with pytest.raises(ValueError, match="COURSE_LANG='fr' .* en, zh"):
        normalise("fr")


def test_tr_formats_in_the_language_and_falls_back_to_english(monkeypatch):
    english, chinese = next((e, c) for e, c in ZH.items() if placeholders(e))
    values = {name: 7 for name in placeholders(english)}
    monkeypatch.setenv("COURSE_LANG", "zh")
    assert tr(english, **values) == chinese.format(**values)
    assert tr("a message nobody translated {n}", n=1) == "a message nobody translated 1"
    monkeypatch.setenv("COURSE_LANG", "en")
    assert tr(english, **values) == english.format(**values)


def test_fix_language_settles_it_for_processes_the_lesson_starts(monkeypatch):
    monkeypatch.setenv("COURSE_LANG", "")  # unset, and restored after the test (fix_language sets it)
    monkeypatch.chdir(REPO_ROOT / "notebooks" / "zh")
    assert i18n.fix_language() == "zh" and os.environ["COURSE_LANG"] == "zh"
