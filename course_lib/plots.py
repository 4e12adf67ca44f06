"""Small matplotlib figures the notebooks show."""

import math
import textwrap
from typing import Dict, Optional, Sequence

import matplotlib.pyplot as plt

from .i18n import tr


def show_tiles(tiles: Sequence, title: str = "", thumbnail: bool = False):
    """Tiles in a row; the last one is labelled as the thumbnail when thumbnail=True."""
    columns = min(len(tiles), 7)
    rows = math.ceil(len(tiles) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(1.9 * columns, 2.1 * rows), squeeze=False)
    for index, ax in enumerate(axes.flat):
        ax.axis("off")
        if index < len(tiles):
            ax.imshow(tiles[index])
            is_thumb = thumbnail and index == len(tiles) - 1
            ax.set_title(tr("thumbnail") if is_thumb else tr("tile {n}", n=index + 1), fontsize=9)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def readable_number(value: float) -> str:
    """13312 -> '13,312', 6.31 -> '6.31', 0.0123 -> '0.0123': whole numbers with thousands separators from 1,000 up,
    three significant digits below (never '1.33e+04')."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def wrap_label(label: str, width: int = 34) -> str:
    """A long axis label on several lines, so it does not squash the plot beside it."""
    return "\n".join(textwrap.wrap(label, width, break_on_hyphens=False)) or label


def bar_chart(
    values: Dict[str, float],
    title: str,
    unit: str = "",
    log: bool = False,
    colors=None,
    xlabel: str = "",
    number_format: Optional[str] = None,
):
    """Horizontal bars with their values written at the end; long labels wrap, so the bars keep their room.
    number_format: a format string such as "{:,.2f}"; by default `readable_number`."""
    names = [wrap_label(name) for name in values]
    numbers = list(values.values())
    lines = sum(name.count("\n") + 1 for name in names)
    fig, ax = plt.subplots(figsize=(7.5, 0.7 + 0.5 * len(names) + 0.2 * (lines - len(names))))
    ax.barh(names, numbers, color=colors or "#4C72B0")
    for y, value in enumerate(numbers):
        text = number_format.format(value) if number_format else readable_number(value)
        ax.text(value * (1.08 if log else 1.0), y, f" {text} {unit}".rstrip(), va="center", fontsize=9)
    if log:
        ax.set_xscale("log")
        ax.set_xlim(min(v for v in numbers if v > 0) / 2, max(numbers) * 4)
    else:
        ax.set_xlim(0, max(numbers) * 1.25)
    ax.set_xlabel(xlabel)
    ax.invert_yaxis()
    ax.set_title(title)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig
