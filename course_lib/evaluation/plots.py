"""Plots of scored answers: accuracy bars with their intervals, the dish confusion matrix, and a gallery of the
questions a fine-tune fixed and broke. Chinese text is shown with a CJK font when one is installed."""

import re
import textwrap
import warnings
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..fonts import cjk_font, font_family
from ..i18n import later, tr
from ..tiling import open_rgb
from .before_after import dish_grid_items, fixed_and_broken
from .parsing import _CJK, _CJK_RANGES, is_cjk, normalise
from .results import GROUPING, UNPARSED, EvalResult


def _font_context():
    import matplotlib.pyplot as plt

    families = font_family()
    return plt.rc_context({} if families is None else {"font.family": families})


def _names_language(names: str) -> str:
    if names == "auto":
        return "zh" if cjk_font() else "en"
    if names not in ("zh", "en"):
        raise ValueError(f"names must be 'auto', 'zh' or 'en', got {names!r}")
    if names == "zh" and not cjk_font():
        warnings.warn("no CJK font installed (e.g. Debian's fonts-noto-cjk); showing English dish names")
        return "en"
    return names


def displayable(text: str, dishes: Sequence[dict], cjk: Optional[bool] = None) -> str:
    """Text as a plot can show it: unchanged with a CJK font; otherwise Chinese dish names become English
    and any other Chinese run becomes '…'."""
    text = normalise(text)
    if cjk is None:
        cjk = cjk_font() is not None
    if cjk:
        return text
    for dish in sorted(dishes, key=lambda d: -len(d.get("zh") or "")):
        if dish.get("zh") and dish.get("en"):
            text = text.replace(normalise(dish["zh"]), f" {dish['en']} ")
    text = re.sub(f"[{_CJK_RANGES}]+", " … ", text)
    return re.sub(r"[ \t]+", " ", text).replace(" \n", "\n").replace("\n ", "\n").strip()


def plot_accuracy(
    before: EvalResult,
    after: Optional[EvalResult] = None,
    labels: Sequence[str] = (later("before"), later("after")),
    by: Sequence[str] = GROUPING,
    title: str = later("Accuracy with 95% Wilson intervals"),
):
    """Bars of accuracy per group/split/kind with CI error bars; before and after side by side."""
    import matplotlib.pyplot as plt

    results = [before] if after is None else [before, after]
    tables = [r.grouped(by) for r in results]
    keys = list(tables[0]) + [k for t in tables[1:] for k in t if k not in tables[0]]
    width = 0.8 / len(results)
    colors = ["#9AA5B1", "#4C72B0"] if len(results) == 2 else ["#4C72B0"]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(keys) + 1.5), 4.2))
    for index, (table, label, color) in enumerate(zip(tables, labels, colors)):
        xs, ys, errors = [], [], [[], []]
        for position, key in enumerate(keys):
            if key in table:
                row = table[key]
                xs.append(position - 0.4 + width * (index + 0.5))
                ys.append(row["accuracy"])
                # max(0, ...): at 0 or 100% the interval's end can land a rounding error past the estimate
                errors[0].append(max(0.0, row["accuracy"] - row["ci_low"]))
                errors[1].append(max(0.0, row["ci_high"] - row["accuracy"]))
        ax.bar(xs, ys, width * 0.95, yerr=errors, capsize=3, color=color, label=tr(label), ecolor="#333333")
        for x, y in zip(xs, ys):
            ax.text(
                x,
                0.01,
                f"{100 * y:.0f}",
                ha="center",
                va="bottom",
                fontsize=8,
                color="white" if y > 0.08 else "#333333",
            )
    counts = {key: next(t[key]["n"] for t in tables if key in t) for key in keys}
    ax.set_xticks(range(len(keys)), [key.replace("/", "\n") + f"\nn={counts[key]}" for key in keys], fontsize=9)
    ax.set_ylim(0, 1.16)  # room for the legend above 100 %
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{100 * v:.0f}%"))
    ax.set_ylabel(tr("accuracy (unparsed = wrong)"))
    ax.set_title(tr(title))
    ax.spines[["top", "right"]].set_visible(False)
    if len(results) > 1:
        ax.legend(frameon=False, loc="upper right", ncol=2)
    fig.tight_layout()
    return fig


def plot_confusion(
    result: EvalResult, names: str = "auto", title: str = later("True dish vs predicted dish"), **filters
):
    """Heatmap of the dish confusion matrix with counts; the last column counts unparsed answers."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    confusion = result.confusion(**filters)
    if not confusion.true:
        raise ValueError(f"no dish questions to plot with {filters or 'these results'}")
    with _font_context():
        lang = _names_language(names)

        def label(d):
            return tr("unparsed") if d == UNPARSED else displayable(result.dish_name(d, lang), result.dishes)

        size = len(confusion.predicted)
        fig, ax = plt.subplots(figsize=(min(20, 2.5 + 0.55 * size), min(20, 2.0 + 0.5 * len(confusion.true))))
        image = ax.imshow(confusion.counts, cmap="Blues", aspect="auto")
        top = confusion.counts.max() if confusion.counts.size else 0
        if size <= 30:
            for (i, j), count in np.ndenumerate(confusion.counts):
                if count:
                    ax.text(
                        j,
                        i,
                        str(count),
                        ha="center",
                        va="center",
                        fontsize=8,
                        color="white" if count > top / 2 else "black",
                    )
        ax.set_xticks(range(size), [label(d) for d in confusion.predicted], rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(confusion.true)), [label(d) for d in confusion.true], fontsize=8)
        ax.set_xlabel(tr("predicted (multiple choice: the chosen option)"))
        ax.set_ylabel(tr("true dish"))
        ax.set_title(tr(title))
        colorbar = fig.colorbar(image, ax=ax, shrink=0.8, label=tr("answers"))
        colorbar.locator = MaxNLocator(integer=True)
        colorbar.update_ticks()
        fig.tight_layout()
    return fig


def _wrap(text: str, width: int) -> str:
    """Wrap by display width (Chinese characters count double), keeping existing line breaks."""
    lines = []
    for paragraph in text.split("\n"):
        if not _CJK.search(paragraph):
            lines.extend(textwrap.wrap(paragraph, width) or [""])
            continue
        line, used = "", 0
        for char in paragraph:
            step = 2 if is_cjk(char) else 1
            if used + step > width:
                lines.append(line)
                line, used = "", 0
            line, used = line + char, used + step
        lines.append(line)
    return "\n".join(lines)


def _read_as(parsed: Optional[str], item: dict, result: EvalResult, cjk: bool) -> str:
    if parsed is None:
        return tr("unparsed")
    if item["kind"] == "mc":
        return tr("read as {answer}", answer=parsed)
    return tr(
        "read as {answer}", answer=displayable(result.dish_name(parsed, "zh" if cjk else "en"), result.dishes, cjk)
    )


def plot_examples(before: EvalResult, after: EvalResult, dataset_root, limit: int = 4, names: str = "auto"):
    """A gallery of fixed and broken questions: image, question, expected answer, answer before and after."""
    import matplotlib.pyplot as plt

    changes = fixed_and_broken(before, after)
    chosen = [(status, item) for status in ("fixed", "broken") for item in changes[status][:limit]]
    root = Path(dataset_root)
    with _font_context():
        cjk = _names_language(names) == "zh"
        if not chosen:
            fig, ax = plt.subplots(figsize=(6, 1.2))
            ax.axis("off")
            ax.text(
                0.5,
                0.5,
                tr("no fixed or broken questions: before and after agree everywhere"),
                ha="center",
                va="center",
            )
            return fig
        fig, axes = plt.subplots(
            len(chosen), 2, figsize=(10, 2.6 * len(chosen)), squeeze=False, gridspec_kw={"width_ratios": [1, 3.2]}
        )
        for (status, item), (image_ax, text_ax) in zip(chosen, axes):
            image_ax.axis("off")
            text_ax.axis("off")
            try:
                image_ax.imshow(open_rgb(root / item["image"]))
            except (OSError, ValueError) as error:
                image_ax.text(
                    0.5,
                    0.5,
                    tr("image not shown:\n{error}", error=type(error).__name__),
                    ha="center",
                    va="center",
                    fontsize=8,
                )
            name = before.dish_name(item["dish"], "zh" if cjk else "en")
            word = tr("fixed") if status == "fixed" else tr("broken")
            image_ax.set_title(
                tr("{status}: {dish}", status=word, dish=displayable(name, before.dishes, cjk)),
                fontsize=10,
                color="#2E7D32" if status == "fixed" else "#C62828",
            )
            mark_before, mark_after = ("✗", "✓") if status == "fixed" else ("✓", "✗")
            if item["kind"] == "mc":
                expected = f"{item['expected']}. {item.get('answer_text') or ''}"
            else:
                expected = before.dish_name(item["expected"], "zh" if cjk else "en")
            text = "\n".join(
                [
                    f"[{item['group']} / {item['split']} / {item['kind']} / {item['lang']}]  {item['id']}",
                    _wrap(displayable(item["question"], before.dishes, cjk), 70),
                    tr("expected: {answer}", answer=displayable(expected, before.dishes, cjk)),
                    _wrap(
                        tr(
                            "{mark} before: {answer}  [{reading}]",
                            mark=mark_before,
                            answer=displayable(item["before"], before.dishes, cjk) or tr("(empty)"),
                            reading=_read_as(item["before_parsed"], item, before, cjk),
                        ),
                        70,
                    ),
                    _wrap(
                        tr(
                            "{mark} after: {answer}  [{reading}]",
                            mark=mark_after,
                            answer=displayable(item["after"], after.dishes, cjk) or tr("(empty)"),
                            reading=_read_as(item["after_parsed"], item, after, cjk),
                        ),
                        70,
                    ),
                ]
            )
            text_ax.text(0, 1, text, va="top", ha="left", fontsize=9, transform=text_ax.transAxes)
        if not cjk:
            fig.text(
                0.01,
                0.002,
                tr("Chinese text shown as … (no CJK font installed); dish names in English"),
                fontsize=7,
                color="gray",
            )
        fig.tight_layout()
    return fig


SPLIT_WORDS = {"test": later("held-out"), "ood": later("other-style (held-out)")}


def plot_dish_grid(
    before: EvalResult,
    after: EvalResult,
    dataset_root,
    group: str = "new",
    split: str = "test",
    kind: str = "open",
    lang: str = "zh",
    columns: int = 3,
):
    """Every dish of the group, one held-out picture each (dish_grid_items' rule), the answers before and after
    marked right or wrong, and beside each the dish's tally over all its questions; the title totals them, so the
    figure agrees with the compare table. The reader sees the accuracy and its misses together."""
    import matplotlib.pyplot as plt

    items = dish_grid_items(before, after, group, split, kind, lang)
    if not items:
        raise ValueError(f"no questions about {group} dishes in the {split} split: nothing to show")
    root = Path(dataset_root)
    rows_needed = -(-len(items) // columns)
    with _font_context():
        cjk = _names_language("auto") == "zh"
        fig, axes = plt.subplots(
            2 * rows_needed,
            columns,
            figsize=(3.6 * columns, 4.6 * rows_needed),
            squeeze=False,
            gridspec_kw={"height_ratios": [2.2, 0.75] * rows_needed},
        )
        for ax in axes.flat:
            ax.axis("off")
        for index, item in enumerate(items):
            image_ax = axes[2 * (index // columns)][index % columns]
            text_ax = axes[2 * (index // columns) + 1][index % columns]
            shown_before, shown_after = item["shown"]
            try:
                image_ax.imshow(open_rgb(root / shown_before["image"]))
            except (OSError, ValueError) as error:
                image_ax.text(
                    0.5, 0.5, tr("image not shown:\n{error}", error=type(error).__name__), ha="center", va="center"
                )
            names = f"{before.dish_name(item['dish'], 'zh')} ({before.dish_name(item['dish'], 'en')})"
            image_ax.set_title(displayable(names, before.dishes, cjk), fontsize=10)
            lines = [_wrap(displayable(shown_before["question"], before.dishes, cjk), 44)]
            for label, row in ((tr("before"), shown_before), (tr("after"), shown_after)):
                mark = "✓" if row["correct"] else "✗"
                answer = displayable(row["answer"], before.dishes, cjk) or tr("(empty)")
                lines.append(_wrap(tr("{mark} {label}: {answer}", mark=mark, label=label, answer=answer), 44))
            text_ax.text(0, 1, "\n".join(lines), va="top", ha="left", fontsize=8.5, transform=text_ax.transAxes)
            tally = tr(
                "all {n} questions: before {before}/{n}, after {after}/{n}",
                n=item["n"],
                before=item["before"],
                after=item["after"],
            )
            share = item["after"] / item["n"]
            colour = "#2E7D32" if share >= 0.75 else ("#E65100" if share >= 0.5 else "#C62828")
            text_ax.text(
                0,
                0.02,
                tally,
                va="bottom",
                ha="left",
                fontsize=8.5,
                color=colour,
                fontweight="bold",
                transform=text_ax.transAxes,
            )
        n, right_before, right_after = (sum(item[key] for item in items) for key in ("n", "before", "after"))
        split_words = SPLIT_WORDS.get(split, split)
        fig.suptitle(
            tr(
                "{group} dishes, {split} pictures: {n} questions, right before {before}/{n}, after {after}/{n}\n"
                "(shown: each dish's first picture, the {lang} {kind} question; ✓ right, ✗ wrong)",
                group={"base": tr("base"), "new": tr("new")}.get(group, group),
                split=tr(split_words),
                n=n,
                before=right_before,
                after=right_after,
                lang={"zh": tr("zh"), "en": tr("en")}.get(lang, lang),
                kind=tr("open") if kind == "open" else tr("multiple-choice"),
            ),
            fontsize=11,
        )
        fig.tight_layout()
    return fig
