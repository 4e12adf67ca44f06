"""One augmented picture of a dish: a background (colour, gradient, plate or texture), then the dish scaled,
rotated, placed, cropped, recoloured and sometimes blurred, all from a seeded generator."""

import io

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

from .spec import SPEC


def _colour(rng, low=None, high=None):
    low = SPEC["background_channels"][0] if low is None else low
    high = SPEC["background_channels"][1] if high is None else high
    return tuple(int(v) for v in rng.integers(low, high, 3))


def _gradient(size: int, a, b, angle: float) -> np.ndarray:
    steps = np.linspace(0, 1, size, dtype=np.float32)
    t = steps[None, :] * np.float32(np.cos(angle)) + steps[:, None] * np.float32(np.sin(angle))
    t = ((t - t.min()) / max(float(t.max() - t.min()), 1e-6))[..., None]
    return np.asarray(a, np.float32) * (1 - t) + np.asarray(b, np.float32) * t


def _background(rng, size: int) -> Image.Image:
    """Solid colour, gradient, a plate on a table, or a light noise texture."""
    kind = int(rng.integers(4))
    if kind == 1 or kind == 2 and rng.random() < 0.5:
        pixels = _gradient(size, _colour(rng), _colour(rng), rng.uniform(0, 2 * np.pi))
    else:
        pixels = np.zeros((size, size, 3), np.float32) + np.asarray(_colour(rng), np.float32)
    if kind == 3:  # texture: smoothed noise around the colour
        noise = rng.normal(0, rng.uniform(6, 18), (size // 4, size // 4, 3))
        noise = (
            np.asarray(
                Image.fromarray(np.clip(noise + 128, 0, 255).astype(np.uint8)).resize((size, size), Image.BICUBIC),
                np.float32,
            )
            - 128
        )
        pixels = pixels + noise
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    if kind == 2:  # a plate: rim and a lighter centre
        draw = ImageDraw.Draw(image)
        radius = size * rng.uniform(0.36, 0.5)
        cx, cy = size / 2 + rng.uniform(-0.08, 0.08, 2) * size
        rim = _colour(rng, 170, 256)
        draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=rim)
        inner = radius * rng.uniform(0.72, 0.85)
        centre = tuple(min(255, c + 25) for c in rim)
        draw.ellipse((cx - inner, cy - inner, cx + inner, cy + inner), fill=centre)
    return image


def render(dish: Image.Image, rng: np.random.Generator, size: int = 224, work: int = 256) -> Image.Image:
    """One augmented picture of an RGBA dish: background, scale, rotation, position, crop, colour, blur."""
    canvas = _background(rng, work)
    side = int(work * rng.uniform(*SPEC["dish_scale"]))
    item = dish.resize((side, side), Image.LANCZOS)
    item = item.rotate(float(rng.uniform(-30, 30)), resample=Image.BICUBIC, expand=True)
    slack = work - item.width
    # anywhere on the canvas, and up to a sixth of the dish past an edge
    low, high = -item.width // 6, max(slack + item.width // 6, -item.width // 6 + 1)
    x, y = (int(v) for v in rng.integers(low, high, 2))
    canvas.paste(item, (x, y), item)
    canvas = ImageEnhance.Brightness(canvas).enhance(rng.uniform(0.85, 1.15))
    canvas = ImageEnhance.Contrast(canvas).enhance(rng.uniform(0.85, 1.15))
    crop = int(work * rng.uniform(0.82, 1.0))
    cx, cy = (int(v) for v in rng.integers(0, work - crop + 1, 2))
    image = canvas.crop((cx, cy, cx + crop, cy + crop)).resize((size, size), Image.LANCZOS)
    if rng.random() < 0.35:
        image = image.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 1.3))))
    return image


def jpeg(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()
