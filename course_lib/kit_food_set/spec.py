"""What the kit's food set is built from: its settings (SPEC), splits, languages and question kinds, and the
seeded random generator every picture and choice comes from."""

import zlib

import numpy as np

SPEC = {
    "seed": 20241102,
    "image_size": 224,  # square: InternVL2 makes one 448 tile of it (no thumbnail), i.e. 256 image tokens
    "work_size": 256,  # images are composed at this size, then a random crop is resized to image_size
    # Light backgrounds (a table, a cloth, a plate): each colour channel in [160, 256). Dark, saturated ones
    # drowned the dish for the tiny model's vision encoder (README, "Why the course model's recipe is as it is").
    "background_channels": [160, 256],
    "dish_scale": [0.55, 0.85],  # the dish's side as a share of the canvas
    "per_dish": {"train": 32, "test": 8, "ood": 4},
    "style": {"train": "fluent", "test": "fluent", "ood": "noto"},
    # Share of base-dish records in finetune_new.json: replaying the base dishes keeps the fine-tune from
    # erasing them; less replay forgot more of them (README, "Why the course model's recipe is as it is").
    "replay_fraction": 0.4,
}
SPLITS = ("train", "test", "ood")
LANGS = ("zh", "en")
KINDS = ("mc", "open")


def rng(*parts) -> np.random.Generator:
    """A generator seeded from SPEC's seed and names (crc32 of strings: stable across runs and machines)."""
    return np.random.default_rng([SPEC["seed"]] + [zlib.crc32(str(p).encode()) for p in parts])
