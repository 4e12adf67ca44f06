"""A grid of the food set's pictures for the lessons."""

import json
from pathlib import Path
from typing import Dict, Optional, Sequence

from PIL import Image

from .records import image_name


def gallery(path: Path, dish_ids: Sequence[str], per_split: Optional[Dict[str, int]] = None):
    """A matplotlib grid: one row per dish, a few train, test and ood pictures side by side."""
    import matplotlib.pyplot as plt

    per_split = per_split or {"train": 3, "test": 2, "ood": 2}
    names = {d["id"]: d["en"] for d in json.loads((Path(path) / "dishes.json").read_text(encoding="utf-8"))}
    columns = [(split, k) for split, n in per_split.items() for k in range(n)]
    fig, axes = plt.subplots(
        len(dish_ids), len(columns), figsize=(1.45 * len(columns), 1.6 * len(dish_ids)), squeeze=False
    )
    for row, dish in zip(axes, dish_ids):
        for ax, (split, k) in zip(row, columns):
            with Image.open(Path(path) / image_name(split, dish, k)) as image:
                ax.imshow(image.convert("RGB"))
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{split} {k}", fontsize=8)
        row[0].set_ylabel(names.get(dish, dish), fontsize=9)
    fig.tight_layout()
    return fig
