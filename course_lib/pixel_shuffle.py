"""Pixel shuffle as InternVL2 uses it: fewer image tokens, each carrying more channels.

A 448x448 tile gives a 32x32 grid of patch features (patch size 14). At scale 0.5, each 2x2 block of
neighbouring patches is folded into one token whose channels are the four patches' channels side by side:
(N, 32, 32, C) -> (N, 16, 16, 4C), so 1024 tokens become 256. With ps_version "v2" (InternVL2's), the
four patches of a block are laid out row by row: top-left, top-right, bottom-left, bottom-right.
"""

from typing import List

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Rectangle

from .i18n import tr


def pixel_shuffle(x: torch.Tensor, scale_factor: float = 0.5, ps_version: str = "v2") -> torch.Tensor:
    """(N, rows, cols, C) -> (N, rows*s, cols*s, C/s^2), the same reshapes as InternVL2's model code."""
    n, rows, cols, c = x.shape
    if rows * scale_factor % 1 or cols * scale_factor % 1 or c / scale_factor % 1:
        raise ValueError(f"a {rows}x{cols} grid with {c} channels cannot be shuffled at scale {scale_factor}")
    x = x.reshape(n, rows, int(cols * scale_factor), int(c / scale_factor))  # pair up neighbouring columns
    x = x.permute(0, 2, 1, 3).contiguous()  # swap the spatial axes ...
    x = x.reshape(n, int(cols * scale_factor), int(rows * scale_factor), int(c / scale_factor**2))  # ... pair rows
    if ps_version == "v2":
        x = x.permute(0, 2, 1, 3).contiguous()  # back to (rows, cols); "v1" leaves the grid transposed
    return x


def unshuffle_permutation(channels: int, scale: int = 2) -> List[int]:
    """Channel order that turns torch.nn.PixelUnshuffle's output into InternVL's v2 pixel shuffle output.

    PixelUnshuffle stores block position k (row-major inside the block) of input channel c at c*scale^2 + k;
    InternVL stores it at k*channels + c. The permutation lists, for each InternVL channel, its source.
    """
    blocks = scale * scale
    return [c * blocks + k for k in range(blocks) for c in range(channels)]


def via_pixel_unshuffle(x: torch.Tensor, scale: int = 2) -> torch.Tensor:
    """The same result through torch.nn.PixelUnshuffle (channels-first) and one fixed channel permutation."""
    unshuffled = torch.nn.PixelUnshuffle(scale)(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
    return unshuffled[..., unshuffle_permutation(x.shape[-1], scale)]


def token_arithmetic(image_size: int = 448, patch_size: int = 14, downsample_ratio: float = 0.5) -> dict:
    """Patches and tokens per tile, before and after pixel shuffle."""
    side = image_size // patch_size
    return {
        "patches per side": side,
        "patches per tile": side * side,
        "tokens per tile": int(side * side * downsample_ratio**2),
        "channels multiplier": int(round(1 / downsample_ratio**2)),
    }


def draw_pixel_shuffle(side: int = 4, ps_version: str = "v2"):
    """Left: a side x side grid of patches, each its own colour. Right: the tokens after pixel shuffle,
    each drawn as the stack of the patch colours folded into its channels, in channel order."""
    colours = plt.get_cmap("tab20")(np.arange(side * side) % 20)[:, :3]
    grid = torch.arange(side * side, dtype=torch.float32).reshape(1, side, side, 1)
    folded = pixel_shuffle(grid, 0.5, ps_version)[0].long()  # each token lists the patch ids it holds
    half = side // 2
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 4.4))
    for row in range(side):
        for col in range(side):
            index = row * side + col
            left.add_patch(Rectangle((col, side - 1 - row), 1, 1, color=colours[index], ec="white", lw=2))
            left.text(col + 0.5, side - 0.5 - row, str(index), ha="center", va="center", fontsize=10)
    for row in range(half):
        for col in range(half):
            ids = folded[row, col].tolist()
            for k, index in enumerate(ids):  # channel blocks top to bottom
                y = half - 1 - row + (len(ids) - 1 - k) / len(ids)
                right.add_patch(Rectangle((col, y), 1, 1 / len(ids), color=colours[index], ec="white", lw=1))
                right.text(
                    col + 0.5,
                    y + 0.5 / len(ids),
                    tr("channel block {k}: patch {index}", k=k, index=index),
                    ha="center",
                    va="center",
                    fontsize=8,
                )
    for ax, size, title in (
        (left, side, tr("{n} patch tokens (C channels each)", n=side * side)),
        (right, half, tr("{n} tokens after pixel shuffle (4C channels each)", n=half * half)),
    ):
        ax.set_xlim(0, size)
        ax.set_ylim(0, size)
        ax.set_aspect("equal")
        ax.axis("off")
        ax.set_title(title, fontsize=11)
    fig.suptitle(tr("Pixel shuffle at scale 0.5 (ps_version {version})", version=ps_version))
    fig.tight_layout()
    return fig
