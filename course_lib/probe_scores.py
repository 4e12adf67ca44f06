"""Scoring the probes of course_lib.probes: reading yes/no, colours and counts out of free answers, and POPE's
figures (accuracy, precision, recall, F1 and the share of yes answers).

An answer that states no reading, or two different ones ("yes, no"; "red and blue"), is unparsed and counted
wrong, as for the food questions (course_lib.evaluation).
"""

import math
import re
from typing import Optional, Sequence

from .i18n import later, tr
from .probes import COLOURS, COUNTS
from .tables import Table, percent

_NEGATIVE_ZH = ("没有", "没", "不", "否", "无")
_POSITIVE_ZH_START = ("是", "对")  # "是的": yes; but "图中的菜是饺子" answers another question
_NUMBER_WORDS = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "一": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
_COLOUR_WORDS = {colour: (colour, zh, zh.rstrip("色")) for colour, (zh, _) in COLOURS.items()}
_COLOUR_WORDS["purple"] += ("violet",)


def parse_yes_no(answer: str) -> Optional[str]:
    """ "yes", "no", or None. English is read by its first yes/no word ("No, there is no sushi" is no); Chinese by
    a negation (没有, 不, 否, 无) before anything else, then 有 anywhere or 是/对 first."""
    text = str(answer or "").strip().lower()
    words = re.findall(r"\b(yes|no|not|yeah|nope)\b", text)
    if words:
        return "yes" if words[0] in ("yes", "yeah") else "no"
    if any(word in text for word in _NEGATIVE_ZH):
        return "no"
    if "有" in text or text.startswith(_POSITIVE_ZH_START):
        return "yes"
    return None


def parse_colour(answer: str) -> Optional[str]:
    """The one colour of course_lib.probes.COLOURS an answer names (English or Chinese), or None."""
    text = str(answer or "").lower()
    named = {
        colour
        for colour, words in _COLOUR_WORDS.items()
        if any(re.search(rf"\b{w}\b" if w.isascii() else re.escape(w), text) for w in words)
    }
    return named.pop() if len(named) == 1 else None


def parse_count(answer: str) -> Optional[str]:
    """The one number an answer states (digits, English or Chinese words), as a string, or None."""
    text = str(answer or "").lower()
    numbers = {int(d) for d in re.findall(r"\d+", text)}
    numbers |= {
        n for word, n in _NUMBER_WORDS.items() if (re.search(rf"\b{word}\b", text) if word.isascii() else word in text)
    }
    return str(numbers.pop()) if len(numbers) == 1 else None


PARSERS = {"yesno": parse_yes_no, "colour": parse_colour, "count": parse_count}
assert set(COUNTS) <= set(_NUMBER_WORDS.values())


def pope(rows: Sequence[dict]) -> dict:
    """POPE's figures over scored yes/no rows (course_lib.evaluation.score): yes is the positive class; an
    unparsed answer is wrong and counts as neither yes nor no."""
    rows = [r for r in rows if r["kind"] == "yesno"]
    said_yes = [r for r in rows if r["parsed"] == "yes"]
    true_yes = sum(r["expected"] == "yes" for r in said_yes)
    positives = sum(r["expected"] == "yes" for r in rows)
    precision = true_yes / len(said_yes) if said_yes else math.nan
    recall = true_yes / positives if positives else math.nan
    f1 = 2 * precision * recall / (precision + recall) if said_yes and true_yes else (0.0 if said_yes else math.nan)
    n = len(rows)
    return {
        "n": n,
        "accuracy": sum(r["correct"] for r in rows) / n if n else math.nan,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "yes_ratio": len(said_yes) / n if n else math.nan,
        "unparsed": sum(r["unparsed"] for r in rows),
        "false_yes": sum(r["expected"] == "no" for r in said_yes),
    }


_POPE_COLUMNS = [
    ("n", lambda r: r["n"]),
    ("accuracy", lambda r: percent(r["accuracy"])),
    ("precision", lambda r: percent(r["precision"])),
    ("recall", lambda r: percent(r["recall"])),
    ("F1", lambda r: percent(r["f1"])),
    ("yes", lambda r: percent(r["yes_ratio"])),
    ("false yes", lambda r: r["false_yes"]),
    ("unparsed", lambda r: r["unparsed"]),
]


# How the absent dish was drawn (the records' "sampling"), as the tables say it. The records call drawing from the
# picture's own group "adversarial"; POPE's adversarial setting draws the objects that co-occur most with those in
# the picture, and a kit picture holds one dish, so the tables say what was done: the same group.
SAMPLING_WORDS = {"random": "absent from the other group", "adversarial": "absent from the same group"}


def pope_table(result, title: str = "") -> Table:
    """POPE's figures per picture group ("base", "new") and absent-dish sampling, and over all yes/no rows.

    result: an EvalResult (course_lib.evaluation) of the probe records. "yes" is the share of yes answers: 50%
    for a model that is never fooled, more for one that hallucinates."""
    rows = [r for r in result.rows if r["kind"] == "yesno"]
    table = Table({}, _POPE_COLUMNS, title or "POPE-style yes/no (is the named dish in the picture?)")
    for group in sorted({r["group"] for r in rows}, key=("new", "base").index):
        table[group] = pope([r for r in rows if r["group"] == group])
        for sampling, words in SAMPLING_WORDS.items():
            # each absent-dish question is paired with the present-dish question about the same picture
            images = {r["image"] for r in rows if r["group"] == group and r.get("sampling") == sampling}
            picked = [r for r in rows if r["group"] == group and r["image"] in images]
            if picked:
                table[f"{group}, {words}"] = pope(picked)
    table["all"] = pope(rows)
    return table


def probe_summary(before, after, labels: Sequence[str] = (later("before"), later("after"))) -> Table:
    """The probes' headline figures side by side: yes/no accuracy and yes share per group, and the shapes'
    colour and count accuracy (general ability)."""

    def figures(result) -> dict:
        out = {}
        for group in ("base", "new"):
            rows = [r for r in result.rows if r["kind"] == "yesno" and r["group"] == group]
            if rows:
                scores = pope(rows)
                out[f"yes/no accuracy, {group} dishes"] = scores["accuracy"]
                out[f"said yes, {group} dishes (50% is right)"] = scores["yes_ratio"]
        for kind in ("colour", "count"):
            rows = [r for r in result.rows if r["kind"] == kind]
            if rows:
                out[f"shapes: {kind}"] = sum(r["correct"] for r in rows) / len(rows)
        return out

    first, second = figures(before), figures(after)
    return Table(
        {name: {labels[0]: first[name], labels[1]: second.get(name, math.nan)} for name in first},
        [(labels[0], lambda r, k=labels[0]: percent(r[k])), (labels[1], lambda r, k=labels[1]: percent(r[k]))],
        later("General ability and hallucination probes"),
    )


def _figure_label(name: str) -> str:
    """A row of probe_summary's table (its English name) as the plot shows it, in the lesson's language."""
    for group, word in (("base", tr("base")), ("new", tr("new"))):
        if name == f"yes/no accuracy, {group} dishes":
            return tr("yes/no accuracy, {group} dishes", group=word)
        if name == f"said yes, {group} dishes (50% is right)":
            return tr("said yes, {group} dishes (50% is right)", group=word)
    for kind, word in (("colour", tr("colour")), ("count", tr("count"))):
        if name == f"shapes: {kind}":
            return tr("shapes: {kind}", kind=word)
    return name


def plot_probe_summary(table: Table):
    """Grouped bars of probe_summary's table: one group per figure, one bar per model; the dashed line marks the
    50% of yes answers a model that is never fooled gives."""
    import matplotlib.pyplot as plt

    labels = [header for header, _ in table.columns]
    names = list(table)
    fig, ax = plt.subplots(figsize=(8, 0.5 + 0.55 * len(names)))
    height = 0.8 / len(labels)
    for index, label in enumerate(labels):
        values = [100 * table[name][label] for name in names]
        bars = ax.barh([y + index * height for y in range(len(names))], values, height, label=tr(label))
        ax.bar_label(bars, fmt="%.0f%%", fontsize=8, padding=2)
    ax.set_yticks([y + height * (len(labels) - 1) / 2 for y in range(len(names))], [_figure_label(n) for n in names])
    ax.invert_yaxis()
    ax.axvline(50, color="grey", linestyle="--", linewidth=0.8)
    ax.set_xlim(0, 110)
    ax.set_xlabel("%")
    ax.set_title(tr(table.title))
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def probe_figures(result) -> dict:
    """The probes' headline figures of one model, rounded, for acceptance tests and benchmarks: yes/no accuracy
    and share of yes answers per picture group, the shapes' colour and count accuracy."""
    figures = {
        f"{group}_{name}": round(pope(result.select(kind="yesno", group=group))[key], 4)
        for group in ("base", "new")
        for name, key in (("yes_no", "accuracy"), ("says_yes", "yes_ratio"))
    }
    figures.update({f"shapes_{kind}": round(result.accuracy(kind=kind), 4) for kind in ("colour", "count")})
    return figures
