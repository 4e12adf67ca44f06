"""The food pictures shipped in assets/images, and simple compositions of them for the lessons.

Two styles of the same 18 dishes: "fluent" (Microsoft Fluent Emoji 3D, 256 px WebP, MIT) and "noto"
(Google Noto Color Emoji, 64 px PNG, Apache-2.0). Each folder has a LICENSE and a dishes.json:
file -> {"id", "zh", "en", "emoji", "cuisine", "group"}; group "base" (the tiny model is pre-trained on
them) or "new" (only the fine-tuning lesson teaches them).
"""

import json
from typing import Dict, List, Sequence

from PIL import Image

from .config import REPO_ROOT
from .tiling import open_rgb

ASSETS_DIR = REPO_ROOT / "assets" / "images"
STYLES = {"fluent": ASSETS_DIR / "fluent-emoji-3d", "noto": ASSETS_DIR / "noto-emoji"}
EMOJI_DIR = STYLES["fluent"]
GROUPS = ("base", "new")


def style_dir(style: str = "fluent"):
    if style not in STYLES:
        raise KeyError(f"no image style {style!r}; known: {sorted(STYLES)}")
    return STYLES[style]


def dishes(style: str = "fluent") -> Dict[str, dict]:
    """file name -> {"id", "zh", "en", "emoji", "cuisine", "group"} for the shipped artwork of one style."""
    return json.loads((style_dir(style) / "dishes.json").read_text(encoding="utf-8"))


def dish_table(style: str = "fluent") -> List[dict]:
    """One row per dish, base dishes first: {"id", "zh", "en", "emoji", "cuisine", "group", "file"}."""
    rows = [dict(info, file=file) for file, info in dishes(style).items()]
    return sorted(rows, key=lambda row: GROUPS.index(row["group"]))  # stable: file order within a group


def _find(name: str, style: str) -> str:
    for file, info in dishes(style).items():
        if name in (file, info["id"], info["en"], info["zh"]):
            return file
    known = sorted(i["en"] for i in dishes(style).values())
    raise KeyError(f"no dish {name!r} in {style_dir(style)}; known: {known}")


def dish_rgba(name: str, style: str = "fluent") -> Image.Image:
    """One dish (by id, English or Chinese name, or file name) with its transparency, for compositing."""
    path = style_dir(style) / _find(name, style)
    with Image.open(path) as image:
        return image.convert("RGBA")


def dish_image(name: str, style: str = "fluent") -> Image.Image:
    """One dish by id, English name, Chinese name or file name, as an RGB image on white."""
    return open_rgb(style_dir(style) / _find(name, style))


def side_by_side(
    names: Sequence[str], vertical: bool = False, background: str = "white", style: str = "fluent"
) -> Image.Image:
    """Dishes in a row (or a column): a wide (or tall) picture for the tiling lessons."""
    images = [dish_image(name, style) for name in names]
    width = sum(i.width for i in images) if not vertical else max(i.width for i in images)
    height = max(i.height for i in images) if not vertical else sum(i.height for i in images)
    canvas = Image.new("RGB", (width, height), background)
    offset = 0
    for image in images:
        canvas.paste(image, (offset, 0) if not vertical else (0, offset))
        offset += image.width if not vertical else image.height
    return canvas
