"""InternVL2's dynamic tiling: pick a grid of 448-px tiles that fits the image's aspect ratio.

Candidates are all grids (i columns, j rows) with min_num <= i*j <= max_num (35 of them for 1..12).
The closest aspect ratio wins; on a tie the larger grid wins only if the image has more than half of
that grid's pixels. The image is resized to the grid and cut into tiles, row by row; when there is
more than one tile, a 448x448 thumbnail of the whole image is appended.
"""
from pathlib import Path
from typing import List, Sequence, Tuple, Union

import numpy as np
import torch
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def target_ratios(min_num: int = 1, max_num: int = 12) -> List[Tuple[int, int]]:
    """All (columns, rows) grids with min_num <= columns*rows <= max_num, smallest area first."""
    grids = {(i, j) for i in range(1, max_num + 1) for j in range(1, max_num + 1) if min_num <= i * j <= max_num}
    return sorted(grids, key=lambda grid: (grid[0] * grid[1], grid))


def closest_grid(width: int, height: int, grids: Sequence[Tuple[int, int]], image_size: int = 448) -> Tuple[int, int]:
    aspect = width / height
    best, best_diff = (1, 1), float("inf")
    for grid in grids:
        diff = abs(aspect - grid[0] / grid[1])
        if diff < best_diff:
            best, best_diff = grid, diff
        elif diff == best_diff and width * height > 0.5 * image_size * image_size * grid[0] * grid[1]:
            best = grid
    return best


def dynamic_preprocess(
    image: Image.Image, min_num: int = 1, max_num: int = 12, image_size: int = 448, use_thumbnail: bool = True
) -> List[Image.Image]:
    columns, rows = closest_grid(*image.size, target_ratios(min_num, max_num), image_size)
    resized = image.resize((columns * image_size, rows * image_size), Image.BICUBIC)
    tiles = [
        resized.crop((c * image_size, r * image_size, (c + 1) * image_size, (r + 1) * image_size))
        for r in range(rows)
        for c in range(columns)
    ]
    if use_thumbnail and len(tiles) != 1:
        tiles.append(image.resize((image_size, image_size), Image.BICUBIC))
    return tiles


def to_tensor(tiles: Sequence[Image.Image]) -> torch.Tensor:
    """RGB tiles -> (tiles, 3, H, W) float tensor normalised with ImageNet mean and std."""
    array = np.stack([np.asarray(tile.convert("RGB"), dtype=np.float32) for tile in tiles]) / 255.0
    array = (array - np.array(IMAGENET_MEAN, np.float32)) / np.array(IMAGENET_STD, np.float32)
    return torch.from_numpy(np.ascontiguousarray(array.transpose(0, 3, 1, 2)))


def open_rgb(source: Union[str, Path, Image.Image]) -> Image.Image:
    if isinstance(source, Image.Image):
        image = source
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"image {path} does not exist")
        try:
            image = Image.open(path)
            image.load()
        except Exception as error:  # PIL raises several types for unreadable files
            raise ValueError(f"image {path} could not be decoded ({error}); use a JPEG, PNG or WebP file") from error
    if image.mode in ("RGBA", "LA", "P"):  # transparent parts become white, not black
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB")


def load_image(source, max_num: int = 12, min_num: int = 1, image_size: int = 448, use_thumbnail: bool = True):
    """An image file or PIL image -> pixel_values (tiles, 3, image_size, image_size) for chat()."""
    tiles = dynamic_preprocess(open_rgb(source), min_num, max_num, image_size, use_thumbnail)
    return to_tensor(tiles)


def tiling_settings(model_config) -> dict:
    """The tiling fields of a checkpoint's config (InternVL2 keeps them in config.json)."""
    return dict(
        min_num=model_config.min_dynamic_patch,
        max_num=model_config.max_dynamic_patch,
        image_size=model_config.force_image_size or model_config.vision_config.image_size,
        use_thumbnail=model_config.use_thumbnail,
    )
