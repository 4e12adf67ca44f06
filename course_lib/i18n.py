"""The language the kit speaks to a student: English, or Chinese in the Chinese edition.

Everything a student reads from the library (begin's header, exercise verdicts and hints, the environment check,
the demo, plot labels, progress bars) goes through `tr`, whose first argument is the English message itself:

    print(tr("{done} of {total} answers parsed", done=9, total=10))

A message stored before it is shown is marked with later("...") where it is written and shown with tr(variable).

In English it is formatted as it is; in Chinese the English is looked up in one table, course_lib.zh.ZH (English
-> Chinese, the same {placeholders}; tests/test_i18n.py checks that every tr() in the kit has its Chinese and
that the placeholders agree). Deep errors meant for developers stay English.

The language: COURSE_LANG (en or zh; zh_CN, zh-CN and the like count as zh), else Chinese when the working folder
is the Chinese lessons' (notebooks/zh: a Chinese notebook's kernel starts there), else English. `begin()` fixes it
for the kernel and whatever it starts (it sets COURSE_LANG), so a lesson speaks one language throughout.
"""

import os
from pathlib import Path
from string import Formatter
from typing import FrozenSet

ENV = "COURSE_LANG"
LANGUAGES = ("en", "zh")
ZH_FOLDER = Path(__file__).resolve().parent.parent / "notebooks" / "zh"


class LanguageError(ValueError):
    """COURSE_LANG names a language the course does not speak."""


def normalise(value: str) -> str:
    """'zh', 'zh_CN', 'zh-CN.UTF-8' -> 'zh'; 'en', 'en_US' -> 'en'; anything else is an error naming COURSE_LANG."""
    value = value.strip().lower()
    for language in LANGUAGES:
        if value == language or value.startswith((language + "_", language + "-", language + ".")):
            return language
    raise LanguageError(f"{ENV}={value!r} is not a language the course speaks: set it to one of {', '.join(LANGUAGES)}")


def language() -> str:
    """'en' or 'zh': COURSE_LANG, else the folder the process works in (notebooks/zh is Chinese), else English."""
    if os.environ.get(ENV, "").strip():
        return normalise(os.environ[ENV])
    try:
        here = Path.cwd().resolve()
    except OSError:  # the working folder was removed
        return "en"
    return "zh" if here == ZH_FOLDER or ZH_FOLDER in here.parents else "en"


def fix_language() -> str:
    """Settle the language for this process and the ones it starts (sets COURSE_LANG); returns it."""
    os.environ[ENV] = chosen = language()
    return chosen


def placeholders(template: str) -> FrozenSet[str]:
    """The {names} a message formats."""
    return frozenset(name for _, name, _, _ in Formatter().parse(template) if name is not None)


def later(english: str) -> str:
    """Mark a message that is stored now and shown later through tr(variable) (e.g. an exercise's hint, kept when
    the kit is imported, shown in the lesson's language when the student runs the check): returns it unchanged."""
    return english


def tr(english: str, **values) -> str:
    """The message in the student's language, formatted with values. `english` is the message in English, which is
    also its key in the Chinese table (a message missing there is shown in English)."""
    template = english
    if language() == "zh":
        from .zh import ZH

        template = ZH.get(english, english)
    return template.format(**values) if values else template
