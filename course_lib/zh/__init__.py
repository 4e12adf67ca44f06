"""The Chinese of every message the kit shows a student: English message -> Chinese, with the same {placeholders}.

One table, kept in a file per part of the kit so it stays readable: setup (begin, the environment check, progress
bars), exercises, plots, demo, and what the lessons' own code cells print. tests/test_i18n.py checks that every tr() call in the kit has its entry here, with
the same placeholders, and that no entry is left over. Written as the course's source lecture speaks (see
translations/zh_CN/GLOSSARY.md for the terms).
"""

from .demo import ZH as _DEMO
from .exercises import ZH as _EXERCISES
from .lessons import ZH as _LESSONS
from .plots import ZH as _PLOTS
from .setup import ZH as _SETUP

ZH = {}
for _part in (_SETUP, _EXERCISES, _PLOTS, _DEMO, _LESSONS):
    _clash = {key for key in _part if key in ZH and ZH[key] != _part[key]}
    assert not _clash, f"translated twice, differently: {sorted(_clash)}"
    ZH.update(_part)
