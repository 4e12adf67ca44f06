"""The kit's food set as a gallery of pictures, in the lesson's language (lesson 09)."""

import json
from pathlib import Path
from typing import Dict, Optional, Sequence

from .i18n import language, tr
from .kit_food_set import gallery


def food_gallery(path, dish_ids: Sequence[str], per_split: Optional[Dict[str, int]] = None):
    """kit_food_set.gallery in the lesson's language: the splits' words, and the dishes' Chinese names in the Chinese
    edition. (gallery's own file is part of the food set's identity, so its figure is relabelled here.)"""
    fig = gallery(path, dish_ids, per_split)
    words = {"train": tr("train"), "test": tr("test"), "ood": tr("ood")}
    dishes = json.loads((Path(path) / "dishes.json").read_text(encoding="utf-8"))
    names = {dish["en"]: dish.get(language()) or dish["en"] for dish in dishes}
    for ax in fig.axes:
        split, _, number = ax.get_title().partition(" ")
        ax.set_title(f"{words.get(split, split)} {number}", fontsize=8)
        if ax.get_ylabel():
            ax.set_ylabel(names.get(ax.get_ylabel(), ax.get_ylabel()), fontsize=9)
    fig.tight_layout()
    return fig
