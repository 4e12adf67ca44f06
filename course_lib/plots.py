"""Small matplotlib figures the notebooks show."""

import math
from typing import Dict, Sequence

import matplotlib.pyplot as plt


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
            ax.set_title("thumbnail" if is_thumb else f"tile {index + 1}", fontsize=9)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def bar_chart(
    values: Dict[str, float],
    title: str,
    unit: str = "",
    log: bool = False,
    colors=None,
    xlabel: str = "",
    number_format: str = "{:,.3g}",
):
    """Horizontal bars with their values written at the end; the axis leaves room for the labels."""
    names = list(values)
    numbers = [values[name] for name in names]
    fig, ax = plt.subplots(figsize=(7.5, 0.7 + 0.5 * len(names)))
    ax.barh(names, numbers, color=colors or "#4C72B0")
    for y, value in enumerate(numbers):
        ax.text(
            value * (1.08 if log else 1.0),
            y,
            f" {number_format.format(value)} {unit}".rstrip(),
            va="center",
            fontsize=9,
        )
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
