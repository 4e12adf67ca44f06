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


def bar_chart(values: Dict[str, float], title: str, unit: str = "", log: bool = False):
    fig, ax = plt.subplots(figsize=(6, 0.5 + 0.45 * len(values)))
    names = list(values)
    ax.barh(names, [values[n] for n in names], color="#4C72B0")
    for y, name in enumerate(names):
        ax.text(values[name], y, f" {values[name]:,.3g} {unit}".rstrip(), va="center", fontsize=9)
    if log:
        ax.set_xscale("log")
    ax.invert_yaxis()
    ax.set_title(title)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig
