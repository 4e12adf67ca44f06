"""Dynamic tiling: InternVL2's grid choice, tile counts and pixels (XTuner's dataset code is the reference),
and images people actually have: every PIL mode, rotated phone photos, extreme sizes, broken files."""

import io
import json

import numpy as np
import pytest
import torch
from conftest import FOOD_IMAGES
from PIL import Image

from course_lib.tiling import (
    ImageLoadError,
    dynamic_preprocess,
    image_to_pixel_values,
    lmdeploy_max_tiles,
    load_image,
    open_rgb,
    plan_tiles,
    target_ratios,
    to_tensor,
    token_budget,
)

# 56 sizes: extreme aspect ratios, tiny images, sizes on and around tile borders and tie-breaks
SIZES = sorted(
    {(w, h) for w in (1, 13, 224, 447, 448, 449, 896, 1344) for h in (1, 300, 448, 1000)}
    | {
        (1280, 720),
        (720, 1280),
        (1920, 1080),
        (3000, 2000),
        (2000, 3000),
        (1, 10000),
        (10000, 1),
        (5376, 448),
        (448, 5376),
        (4000, 50),
        (50, 4000),
        (2, 3),
        (640, 480),
        (1000, 999),
        (897, 448),
        (1792, 1344),
        (1366, 768),
        (2560, 1440),
        (333, 777),
        (96, 2048),
        (2048, 96),
        (4500, 4500),
        (2200, 1000),
        (500, 1100),
    }
)


@pytest.fixture(scope="module")
def xtuner_preprocess(tiny_path, tmp_path_factory):
    """XTuner's own InternVL dataset object on the tiny checkpoint: its tiler and its tensor transform."""
    from mmengine.config import ConfigDict
    from xtuner.dataset.internvl_dataset import InternVL_V1_5_Dataset
    from xtuner.dataset.internvl_dataset import dynamic_preprocess as xtuner_tiles
    from xtuner.utils import PROMPT_TEMPLATE

    data = tmp_path_factory.mktemp("vqa") / "data.json"
    data.write_text(
        json.dumps(
            [
                {
                    "image": "1f95f.webp",
                    "conversations": [{"from": "human", "value": "<image>\n?"}, {"from": "gpt", "value": "饺子"}],
                }
            ],
            ensure_ascii=False,
        )
    )
    dataset = InternVL_V1_5_Dataset(
        model_path=str(tiny_path),
        template=ConfigDict(PROMPT_TEMPLATE.internlm2_chat),
        data_paths=str(data),
        image_folders=str(FOOD_IMAGES),
    )

    def preprocess(image):
        tiles = xtuner_tiles(
            image, dataset.min_dynamic_patch, dataset.max_dynamic_patch, dataset.image_size, dataset.use_thumbnail
        )
        return torch.stack([dataset.transformer(tile) for tile in tiles])

    return preprocess


def test_35_grids_at_most_12_tiles():
    grids = target_ratios(1, 12)
    assert len(grids) == 35
    assert all(1 <= c * r <= 12 for c, r in grids)
    with pytest.raises(ValueError, match="min_num <= max_num"):
        target_ratios(3, 2)


def test_the_grid_is_xtuners_for_every_tile_range_exact_ties_included():
    """With min_num > 1 several grids can tie on aspect ratio; the candidate order decides, as in InternVL."""
    from xtuner.dataset.internvl_dataset import find_closest_aspect_ratio

    assert plan_tiles(5000, 2000, min_num=4, max_num=4).grid == (2, 2)  # (2,2) and (4,1) tie at |2.5 - r| = 1.5
    sides = (1, 100, 448, 500, 896, 1000, 1344, 2000, 2500, 3000, 5000)
    for min_num in range(1, 7):
        for max_num in range(min_num, 13):
            grids = target_ratios(min_num, max_num)
            for width in sides:
                for height in sides:
                    theirs = find_closest_aspect_ratio(width / height, grids, width, height, 448)
                    assert plan_tiles(width, height, min_num=min_num, max_num=max_num).grid == theirs
                    assert [c * r for c, r in grids] == sorted(c * r for c, r in grids)
    official = sorted(
        {(i, j) for n in range(4, 7) for i in range(1, n + 1) for j in range(1, n + 1) if 4 <= i * j <= 6},
        key=lambda grid: grid[0] * grid[1],
    )  # InternVL's own construction
    assert target_ratios(4, 6) == official


@pytest.mark.parametrize(
    "size, max_num, tiles",
    [
        ((1280, 720), 12, 9),
        ((1280, 720), 4, 3),
        ((448, 448), 12, 1),
        ((256, 256), 12, 1),
        ((1000, 100), 12, 11),
        ((100, 1000), 6, 7),
        ((1, 10000), 12, 13),
        ((1, 1), 12, 1),
    ],
)
def test_tile_counts(size, max_num, tiles):
    assert plan_tiles(*size, max_num=max_num).tiles == tiles
    assert len(dynamic_preprocess(Image.new("RGB", size), 1, max_num, 448, True)) == tiles


def test_identical_to_xtuner_on_56_sizes(xtuner_preprocess):
    assert len(SIZES) >= 50
    source = open_rgb(FOOD_IMAGES / "1f35c.webp")
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 300, 3), dtype=np.uint8))
    for index, size in enumerate(SIZES):
        image = (noise if index % 2 else source).resize(size, Image.BILINEAR)
        ours, theirs = image_to_pixel_values(image), xtuner_preprocess(image)
        assert ours.shape == theirs.shape, size
        assert torch.equal(ours, theirs), size
        if index % 7 == 0:  # the PIL-tile path agrees too
            assert torch.equal(to_tensor(dynamic_preprocess(image)), theirs), size


def _encoded(image, fmt, **params):
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "P", "PA", "LA", "L", "1", "I;16", "I", "F", "CMYK", "YCbCr"])
def test_every_pil_mode_gives_rgb_tiles(mode):
    base = open_rgb(FOOD_IMAGES / "1f96e.webp").resize((600, 300))
    if mode == "PA":
        image = base.convert("P").convert("PA")
    elif mode in ("I;16", "I", "F"):
        image = Image.fromarray(
            (np.asarray(base.convert("L"), np.float64) * 257).astype(
                {"I;16": np.uint16, "I": np.int32, "F": np.float32}[mode]
            ),
            mode if mode != "I" else None,
        )
    else:
        image = base.convert(mode)
    pixels = load_image(image)
    assert pixels.shape == (3, 3, 448, 448) and torch.isfinite(pixels).all()


def test_16_bit_grey_is_rescaled_not_clipped():
    grey = Image.fromarray(np.full((64, 64), 32768, np.uint16), "I;16")
    value = np.asarray(open_rgb(grey))[0, 0]
    assert list(value) == [128, 128, 128]  # a naive convert("RGB") would give 255 (white)


def test_transparent_background_becomes_white():
    pixels = load_image(FOOD_IMAGES / "1f95f.webp")  # RGBA artwork on a transparent background
    corner = pixels[0, :, 0, 0] * torch.tensor([0.229, 0.224, 0.225]) + torch.tensor([0.485, 0.456, 0.406])
    assert torch.allclose(corner, torch.ones(3), atol=1e-5)


def test_exif_rotated_photo_is_turned_upright(tmp_path):
    image = Image.new("RGB", (200, 100), "blue")
    image.paste((255, 0, 0), (0, 0, 100, 100))  # left half red, as the camera stored it
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = tmp_path / "phone.jpg"
    image.save(path, exif=exif.tobytes(), quality=95)
    upright = open_rgb(path)
    assert upright.size == (100, 200)
    top, bottom = np.asarray(upright)[10, 50], np.asarray(upright)[190, 50]
    assert top[0] > 200 and top[2] < 60 and bottom[2] > 200  # red on top after turning


def test_animated_image_uses_its_first_frame(tmp_path):
    frames = [Image.new("RGB", (64, 64), colour) for colour in ("red", "green")]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    assert tuple(np.asarray(open_rgb(path))[0, 0]) == (255, 0, 0)


@pytest.mark.parametrize(
    "name, payload",
    [
        ("broken.jpg", b"not an image at all"),
        ("empty.png", b""),
        ("truncated.jpg", "truncate:JPEG"),
        ("truncated.png", "truncate:PNG"),
    ],
)
def test_broken_files_name_the_file(tmp_path, name, payload):
    if isinstance(payload, str):
        full = _encoded(
            Image.fromarray(np.random.default_rng(1).integers(0, 256, (300, 300, 3), dtype=np.uint8)),
            payload.split(":")[1],
        )
        payload = full[: len(full) // 2]
    path = tmp_path / name
    path.write_bytes(payload)
    with pytest.raises(ImageLoadError, match=name):
        load_image(path)


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.png"):
        load_image(tmp_path / "missing.png")


@pytest.mark.parametrize("side", [9000, 10000, 15000])  # over the kit's 64 M limit; PIL's warning; PIL's refusal
def test_decompression_bomb_is_refused_before_decoding(tmp_path, side):
    path = tmp_path / f"bomb{side}.png"
    Image.new("1", (side, side)).save(path)  # a few kB on disk, side*side pixels once decoded
    assert path.stat().st_size < 1_000_000
    with pytest.raises(ImageLoadError) as refused:
        load_image(path)
    # The kit's words, also above Pillow's own limit (there Pillow refuses to open the file at all).
    assert str(refused.value) == (
        f"{path} is {side}x{side} = {side * side / 1e6:.0f} M pixels, over the 64 M limit "
        "(a decompression bomb or a huge scan); downscale it first"
        if side * side < Image.MAX_IMAGE_PIXELS
        else f"{path} is {side * side / 1e6:.0f} M pixels, over the 64 M limit (a decompression "
        "bomb or a huge scan); downscale it first"
    )


def test_token_budget_and_lmdeploy_settings():
    budget = token_budget(1280, 720, max_num=12)
    assert (budget["tiles"], budget["image tokens"], budget["thumbnail"]) == (9, 2304, True)
    assert budget["share of context"] == pytest.approx(2304 / 8192)
    assert token_budget(1280, 720, max_num=4)["image tokens"] == 768
    assert lmdeploy_max_tiles(12) == 12
    assert [lmdeploy_max_tiles(12, detail=d) for d in ("low", "medium", "high")] == [6, 12, 24]
    assert lmdeploy_max_tiles(12, max_dynamic_patch=2, detail="high") == 2
    assert token_budget(3000, 2000, max_num=lmdeploy_max_tiles(12, detail="high"))["tiles"] == 25


def test_wide_integer_and_float_greyscale_keep_their_brightness():
    eight_bit = np.tile(np.arange(0, 256, dtype=np.int32), (8, 1))  # mode I holding 0..255
    assert (np.asarray(open_rgb(Image.fromarray(eight_bit, "I")))[..., 0] == eight_bit).all()
    unit = np.full((8, 8), 0.5, np.float32)  # mode F in [0, 1], constant
    assert np.asarray(open_rgb(Image.fromarray(unit, "F")))[0, 0, 0] == 128
    broken = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    broken[0, 0], broken[0, 1] = np.nan, np.inf
    grey = np.asarray(open_rgb(Image.fromarray(broken, "F")))[..., 0]
    assert grey[0, 0] == 0 and grey[0, 1] == 0 and grey[-1, -1] == 255 and grey[4, 4] == round(broken[4, 4] * 255)
    with pytest.raises(ImageLoadError, match="every pixel .* is NaN or infinite"):
        open_rgb(Image.fromarray(np.full((8, 8), np.nan, np.float32), "F"))


def test_a_folder_or_an_empty_path_is_named_as_such(tmp_path):
    with pytest.raises(FileNotFoundError, match="is a folder, not a picture"):
        open_rgb(tmp_path)
    with pytest.raises(FileNotFoundError, match="an empty path was given as the image"):
        open_rgb("")


def test_the_plain_reading_tiles_a_sideways_photo_the_other_way(tmp_path):
    from course_lib.sample_pictures import awkward_pictures
    from course_lib.tiling import plain_rgb

    pictures = awkward_pictures(tmp_path, width=1200, height=600)
    plain, kit = plain_rgb(pictures["phone.jpg"]), open_rgb(pictures["phone.jpg"])
    assert (plan_tiles(*plain.size).grid, plan_tiles(*kit.size).grid) == ((2, 1), (1, 2))
    assert plain_rgb(pictures["cutout.png"]).getpixel((0, 0)) == (200, 40, 40)  # the colour under the alpha
    assert open_rgb(pictures["cutout.png"]).getpixel((0, 0)) == (255, 255, 255)
    assert plain_rgb(pictures["plain.png"]).tobytes() == open_rgb(pictures["plain.png"]).tobytes()
