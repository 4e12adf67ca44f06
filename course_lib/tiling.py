"""InternVL2's dynamic tiling: pick a grid of 448-px tiles that fits the image's aspect ratio.

Candidates are all grids (i columns, j rows) with min_num <= i*j <= max_num (35 of them for 1..12).
The closest aspect ratio wins; on a tie the later (larger) grid wins only if the image has more than half
of that grid's pixels. The image is resized to the grid and cut into tiles, row by row; when there is more
than one tile, a 448x448 thumbnail of the whole image is appended. Pixels are then scaled to [0, 1] and
normalised with ImageNet's mean and std.

The tiles and pixel values are identical to XTuner's and InternVL's preprocessing (tests check it); this
version cuts tiles from one normalised array instead of cropping and converting each tile separately.
"""

import re
import warnings
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .i18n import tr

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MAX_PIXELS = 64_000_000  # refuse larger images (decompression bombs) before decoding them

# LMDeploy's InternVL2 preprocessing: per image, `max_dynamic_patch` wins; otherwise `detail` picks the
# maximum tiles; otherwise the checkpoint's own max_dynamic_patch is used.
LMDEPLOY_DETAIL_TILES = {"low": 6, "medium": 12, "high": 24}


class ImageLoadError(ValueError):
    """An image could not be turned into tiles; the message names the file and what to do."""


# ---- the grid ------------------------------------------------------------------------------------
def target_ratios(min_num: int = 1, max_num: int = 12) -> List[Tuple[int, int]]:
    """All (columns, rows) grids with min_num <= columns*rows <= max_num, fewest tiles first.

    Within one tile count the order is that of the Python set InternVL's `dynamic_preprocess` builds (the same
    generator, so the same iteration order), because on an exact aspect-ratio tie the order decides the grid:
    plan_tiles(5000, 2000, min_num=4, max_num=4) is 2x2 there, not 4x1.
    """
    if not 1 <= min_num <= max_num:
        raise ValueError(f"need 1 <= min_num <= max_num, got min_num={min_num}, max_num={max_num}")
    grids = set(
        (i, j)
        for n in range(min_num, max_num + 1)
        for i in range(1, n + 1)
        for j in range(1, n + 1)
        if min_num <= i * j <= max_num
    )
    return sorted(grids, key=lambda grid: grid[0] * grid[1])


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


@dataclass(frozen=True)
class TilePlan:
    width: int
    height: int
    grid: Tuple[int, int]  # (columns, rows)
    image_size: int
    thumbnail: bool
    tokens_per_tile: int

    @property
    def tiles(self) -> int:
        """Tiles the vision encoder sees, the thumbnail included."""
        return self.grid[0] * self.grid[1] + int(self.thumbnail)

    @property
    def image_tokens(self) -> int:
        return self.tiles * self.tokens_per_tile

    @property
    def resized(self) -> Tuple[int, int]:
        return self.grid[0] * self.image_size, self.grid[1] * self.image_size


def plan_tiles(
    width: int,
    height: int,
    min_num: int = 1,
    max_num: int = 12,
    image_size: int = 448,
    use_thumbnail: bool = True,
    tokens_per_tile: int = 256,
) -> TilePlan:
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    grid = closest_grid(width, height, target_ratios(min_num, max_num), image_size)
    thumbnail = use_thumbnail and grid[0] * grid[1] != 1
    return TilePlan(width, height, grid, image_size, thumbnail, tokens_per_tile)


def token_budget(width: int, height: int, max_num: int = 12, context_length: int = 8192, **kwargs) -> dict:
    """What one image costs: grid, tiles, image tokens and their share of the context window."""
    plan = plan_tiles(width, height, max_num=max_num, **kwargs)
    return {
        "grid (columns x rows)": f"{plan.grid[0]} x {plan.grid[1]}",
        "tiles": plan.tiles,
        "thumbnail": plan.thumbnail,
        "image tokens": plan.image_tokens,
        "share of context": plan.image_tokens / context_length,
    }


def lmdeploy_max_tiles(
    checkpoint_max: int, max_dynamic_patch: Optional[int] = None, detail: Optional[str] = None
) -> int:
    """The max_num LMDeploy 0.18 uses for one image, from its per-image settings."""
    if isinstance(max_dynamic_patch, int):
        return max_dynamic_patch
    return LMDEPLOY_DETAIL_TILES.get(detail, checkpoint_max)


# ---- opening images safely -----------------------------------------------------------------------
def _grey_to_uint8(values: np.ndarray, mode: str, name: str) -> np.ndarray:
    """Greyscale of any range to 0..255 by the range its values use: 8-bit values stay as they are, 16-bit ones
    are scaled by 1/257, floats in [0, 1] by 255; anything else is stretched from its minimum to its maximum.
    NaN and infinite pixels become 0."""
    finite = np.isfinite(values)
    if not finite.any():
        raise ImageLoadError(f"{name}: every pixel of this mode {mode!r} image is NaN or infinite; there is no picture")
    low, high = float(values[finite].min()), float(values[finite].max())
    if mode == "F" and 0.0 <= low and high <= 1.0:
        scaled = values * 255.0
    elif 0.0 <= low and high <= 255.0:
        scaled = values
    elif mode != "F" and 0.0 <= low and high <= 65535.0:
        scaled = values / 257.0
    else:
        scaled = (values - low) / (high - low) * 255.0 if high > low else np.full_like(values, 128.0)
    return np.clip(np.where(finite, scaled, 0.0) + 0.5, 0, 255).astype(np.uint8)


def _to_rgb(image: Image.Image, name: str) -> Image.Image:
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")  # transparent parts become white, not black
        return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
    if image.mode.startswith("I") or image.mode == "F":  # 16/32-bit integer or float greyscale (convert() clips)
        return Image.fromarray(_grey_to_uint8(np.asarray(image, dtype=np.float64), image.mode, name), "L").convert(
            "RGB"
        )
    try:
        return image.convert("RGB")
    except (ValueError, OSError) as error:
        raise ImageLoadError(
            f"{name}: PIL cannot convert mode {image.mode!r} to RGB ({error}); save it as RGB"
        ) from error


def _over_the_limit(name: str, pixels: Optional[int], max_pixels: int, size: str = "") -> str:
    count = f"{size}{pixels / 1e6:.0f} M pixels" if pixels else "more pixels than Pillow opens"
    return (
        f"{name} is {count}, over the {max_pixels / 1e6:.0f} M limit (a decompression bomb or a huge scan); "
        "downscale it first"
    )


def open_rgb(source: Union[str, Path, Image.Image], max_pixels: int = MAX_PIXELS) -> Image.Image:
    """A file path or PIL image -> an upright RGB image, or an ImageLoadError naming the file.

    Applies the EXIF orientation (phone photos), flattens transparency onto white, scales 16-bit and float
    greyscale by the range their values use, takes the first frame of animations, and refuses images over
    max_pixels before decoding.
    """
    if isinstance(source, Image.Image):
        image, name = source, "the image"
    else:
        if str(source).strip() == "":
            raise FileNotFoundError("an empty path was given as the image; pass a picture's file path")
        path = Path(source)
        name = str(path)
        if path.is_dir():
            raise FileNotFoundError(f"image {path} is a folder, not a picture; pass one image file inside it")
        if not path.is_file():
            raise FileNotFoundError(f"image {path} does not exist")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                image = Image.open(path)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
            # Pillow's own limit (89 M pixels warns, 179 M refuses) lies above the kit's, so this is the same
            # refusal; Pillow's text gives the pixel count ("Image size (N pixels) exceeds limit ...").
            found = re.search(r"\((\d+) pixels\)", str(error))
            raise ImageLoadError(_over_the_limit(name, int(found.group(1)) if found else None, max_pixels)) from error
        except (UnidentifiedImageError, OSError) as error:
            raise ImageLoadError(f"{name} is not a readable image ({error}); use a JPEG, PNG or WebP file") from error
    width, height = image.size
    if width * height > max_pixels:
        raise ImageLoadError(_over_the_limit(name, width * height, max_pixels, f"{width}x{height} = "))
    try:
        image.load()
        image = ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError) as error:  # truncated or corrupt data
        raise ImageLoadError(f"{name} could not be decoded ({error}); the file may be truncated or corrupt") from error
    return _to_rgb(image, name)


EXIF_ORIENTATION = 0x0112


def plain_reading_differs(source: Union[str, Path, Image.Image]) -> Optional[str]:
    """Why a plain ``Image.open(path).convert("RGB")`` (XTuner's training loader) would see other pixels than
    open_rgb, or None when both read the same picture. Reads the header only."""
    with nullcontext(source) if isinstance(source, Image.Image) else Image.open(source) as image:
        orientation = image.getexif().get(EXIF_ORIENTATION, 1)
        if orientation not in (None, 1):
            return f"EXIF orientation {orientation}: stored turned or mirrored, shown upright"
        if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
            return f"mode {image.mode} with transparency: flattened onto white, not dropped"
        if image.mode.startswith("I") or image.mode == "F":
            return f"mode {image.mode} greyscale: scaled to 0..255, not clipped"
    return None


def plain_rgb(path: Union[str, Path]) -> Image.Image:
    """A picture as XTuner's training, LMDeploy's `load_image` and InternVL's own `load_image` read a file:
    ``Image.open(path).convert("RGB")``. Shown beside open_rgb in lesson 05; the kit never tiles this reading."""
    with Image.open(path) as image:
        return image.convert("RGB")


def draw_readings(paths: Sequence[Union[str, Path]], max_num: int = 12):
    """For each picture: the plain reading and the kit's (open_rgb), each with the grid it would be tiled into."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(paths), figsize=(2.6 * len(paths), 5.2), squeeze=False)
    for column, path in enumerate(paths):
        for row, (label, image) in enumerate(
            ((tr("plain convert('RGB')"), plain_rgb(path)), (tr("kit: open_rgb"), open_rgb(path)))
        ):
            grid = plan_tiles(*image.size, max_num=max_num).grid
            ax = axes[row][column]
            ax.imshow(image)
            title = tr(
                "{name}\n{reading}: {width}x{height}, grid {columns}x{rows}",
                name=Path(path).name,
                reading=label,
                width=image.size[0],
                height=image.size[1],
                columns=grid[0],
                rows=grid[1],
            )
            ax.set_title(title, fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    return fig


# ---- image -> tiles -> pixel values --------------------------------------------------------------
def dynamic_preprocess(
    image: Image.Image, min_num: int = 1, max_num: int = 12, image_size: int = 448, use_thumbnail: bool = True
) -> List[Image.Image]:
    """The tiles as PIL images (row by row, thumbnail last), for looking at them."""
    plan = plan_tiles(*image.size, min_num, max_num, image_size, use_thumbnail)
    resized = image.resize(plan.resized, Image.BICUBIC)
    columns, rows = plan.grid
    tiles = [
        resized.crop((c * image_size, r * image_size, (c + 1) * image_size, (r + 1) * image_size))
        for r in range(rows)
        for c in range(columns)
    ]
    if plan.thumbnail:
        tiles.append(image.resize((image_size, image_size), Image.BICUBIC))
    return tiles


_MEAN = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
_STD = torch.tensor(IMAGENET_STD).view(3, 1, 1)


def _normalise_into(out: torch.Tensor, channels_first_uint8: torch.Tensor) -> torch.Tensor:
    """out[...] = (x / 255 - mean) / std in float32: the same operations, in the same order, as torchvision's
    ToTensor + Normalize, so the values are bit-identical."""
    out.copy_(channels_first_uint8)
    return out.div_(255).sub_(_MEAN).div_(_STD)


def _uint8(image: Image.Image) -> torch.Tensor:
    array = np.asarray(image)
    if not array.flags.writeable:  # arrays viewing a PIL image are read-only; torch wants to own its memory
        array = array.copy()
    return torch.from_numpy(array)


def to_tensor(tiles: Sequence[Image.Image]) -> torch.Tensor:
    """RGB tiles (PIL) -> (tiles, 3, H, W) normalised float tensor."""
    stacked = torch.stack([_uint8(tile.convert("RGB")) for tile in tiles]).permute(0, 3, 1, 2)
    return _normalise_into(torch.empty(stacked.shape, dtype=torch.float32), stacked)


def image_to_pixel_values(
    image: Image.Image, min_num: int = 1, max_num: int = 12, image_size: int = 448, use_thumbnail: bool = True
) -> torch.Tensor:
    """An RGB image -> (tiles, 3, image_size, image_size): resize once, cut the tiles as views of one array,
    and convert each byte once (transposing while still uint8 is 4x less memory traffic than float32)."""
    plan = plan_tiles(*image.size, min_num, max_num, image_size, use_thumbnail)
    columns, rows = plan.grid
    size = image_size
    out = torch.empty(plan.tiles, 3, size, size, dtype=torch.float32)
    grid = _uint8(image.resize(plan.resized, Image.BICUBIC)).view(rows, size, columns, size, 3)
    tiles = grid.permute(0, 2, 4, 1, 3).reshape(rows * columns, 3, size, size)  # row by row, channels first
    _normalise_into(out[: rows * columns], tiles)
    if plan.thumbnail:
        thumbnail = _uint8(image.resize((size, size), Image.BICUBIC)).permute(2, 0, 1)
        _normalise_into(out[-1], thumbnail)
    return out


def load_image(source, max_num: int = 12, min_num: int = 1, image_size: int = 448, use_thumbnail: bool = True):
    """An image file or PIL image -> pixel_values (tiles, 3, image_size, image_size) for chat()."""
    return image_to_pixel_values(open_rgb(source), min_num, max_num, image_size, use_thumbnail)


def tiling_settings(model_config) -> dict:
    """The tiling fields of a checkpoint's config (InternVL2 keeps them in config.json)."""
    return dict(
        min_num=model_config.min_dynamic_patch,
        max_num=model_config.max_dynamic_patch,
        image_size=model_config.force_image_size or model_config.vision_config.image_size,
        use_thumbnail=model_config.use_thumbnail,
    )


def draw_tile_grid(
    image: Image.Image, max_num: int = 12, image_size: int = 448, use_thumbnail: bool = True, context_length: int = 8192
):
    """The image resized to its grid with the tile borders drawn, the thumbnail beside it, and the cost."""
    import matplotlib.pyplot as plt

    plan = plan_tiles(*image.size, max_num=max_num, image_size=image_size, use_thumbnail=use_thumbnail)
    columns, rows = plan.grid
    fig, axes = plt.subplots(1, 2, figsize=(9, 4), gridspec_kw={"width_ratios": [3, 1]})
    axes[0].imshow(image.resize(plan.resized, Image.BICUBIC))
    for c in range(1, columns):
        axes[0].axvline(c * image_size, color="red", lw=2)
    for r in range(1, rows):
        axes[0].axhline(r * image_size, color="red", lw=2)
    axes[0].set_title(
        tr(
            "{width}x{height} -> grid {columns}x{rows} of {size}-px tiles",
            width=image.size[0],
            height=image.size[1],
            columns=columns,
            rows=rows,
            size=image_size,
        ),
        fontsize=10,
    )
    axes[1].imshow(image.resize((image_size, image_size), Image.BICUBIC))
    axes[1].set_title(tr("thumbnail") if plan.thumbnail else tr("(no thumbnail: one tile)"), fontsize=10)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(
        tr(
            "{tiles} tiles = {tokens} image tokens = {share:.0%} of an {context}-token context",
            tiles=plan.tiles,
            tokens=plan.image_tokens,
            share=plan.image_tokens / context_length,
            context=context_length,
        )
    )
    fig.tight_layout()
    return fig
