"""Pictures people really upload, made on the fly (no files shipped): a phone photo stored sideways, a cut-out
with a transparent background, a palette image with a transparent colour, a 16-bit greyscale scan. Lesson 05
shows how each is read; the tests use them to check that training, evaluation and both serving backends see
the same pixels (the one image rule: course_lib.tiling.open_rgb)."""

from pathlib import Path

import numpy as np
from PIL import Image


def awkward_pictures(folder: Path, width: int = 120, height: int = 60) -> dict:
    """Pictures people really upload, written into folder: {name: path}. Each has a red left half and a blue
    right half, so a turn or a lost background shows. "plain.png" reads the same everywhere; the others are
    read differently by a plain Image.open(...).convert("RGB") (XTuner's training, LMDeploy, InternVL's own
    load_image) than by course_lib.tiling.open_rgb."""
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[:, : width // 2] = (200, 40, 40)
    pixels[:, width // 2 :] = (40, 40, 200)
    picture = Image.fromarray(pixels)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {name: folder / name for name in ("plain.png", "phone.jpg", "cutout.png", "palette.png", "grey16.png")}
    picture.save(paths["plain.png"])
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways, shown turned 90 degrees (a phone photo)
    picture.save(paths["phone.jpg"], exif=exif, quality=95)
    cutout = picture.convert("RGBA")
    cutout.putalpha(0)  # fully transparent: the kit sees white, a plain convert("RGB") sees red and blue
    cutout.save(paths["cutout.png"])
    palette = picture.convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    palette.save(paths["palette.png"], transparency=palette.getpixel((0, 0)))  # the red half is transparent
    grey = np.asarray(picture.convert("L"), np.uint16) * 257  # 16-bit: convert("RGB") clips it to white
    Image.fromarray(grey).save(paths["grey16.png"])
    return paths
