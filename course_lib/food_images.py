"""The food pictures shipped in assets/images, and simple compositions of them for the lessons."""
import json
from typing import Dict, Sequence

from PIL import Image

from .config import REPO_ROOT
from .tiling import open_rgb

EMOJI_DIR = REPO_ROOT / "assets" / "images" / "fluent-emoji-3d"


def dishes() -> Dict[str, dict]:
    """file name -> {"zh", "en", "emoji"} for the shipped artwork."""
    return json.loads((EMOJI_DIR / "dishes.json").read_text(encoding="utf-8"))


def dish_image(name: str) -> Image.Image:
    """One dish by English name, Chinese name or file name, as an RGB image on white."""
    for file, info in dishes().items():
        if name in (file, info["en"], info["zh"]):
            return open_rgb(EMOJI_DIR / file)
    raise KeyError(f"no dish {name!r} in {EMOJI_DIR}; known: {sorted(i['en'] for i in dishes().values())}")


def side_by_side(names: Sequence[str], vertical: bool = False, background: str = "white") -> Image.Image:
    """Dishes in a row (or a column): a wide (or tall) picture for the tiling lessons."""
    images = [dish_image(name) for name in names]
    width = sum(i.width for i in images) if not vertical else max(i.width for i in images)
    height = max(i.height for i in images) if not vertical else sum(i.height for i in images)
    canvas = Image.new("RGB", (width, height), background)
    offset = 0
    for image in images:
        canvas.paste(image, (offset, 0) if not vertical else (0, offset))
        offset += image.width if not vertical else image.height
    return canvas
