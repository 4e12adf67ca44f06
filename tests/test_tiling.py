"""Dynamic tiling: InternVL2's grid choice, tile counts and pixels (XTuner's preprocessing is the reference)."""
import pytest
import torch
from PIL import Image

from course_lib.tiling import dynamic_preprocess, load_image, target_ratios, to_tensor
from conftest import FOOD_IMAGES


def test_35_grids_at_most_12_tiles():
    grids = target_ratios(1, 12)
    assert len(grids) == 35
    assert all(1 <= c * r <= 12 for c, r in grids)


@pytest.mark.parametrize("size, max_num, tiles", [((1280, 720), 12, 9), ((1280, 720), 4, 3), ((448, 448), 12, 1),
                                                   ((256, 256), 12, 1), ((1000, 100), 12, 11), ((100, 1000), 6, 7)])
def test_tile_counts(size, max_num, tiles):
    assert len(dynamic_preprocess(Image.new("RGB", size), 1, max_num, 448, True)) == tiles


@pytest.mark.parametrize("size", [(1280, 720), (720, 1280), (448, 448), (300, 200), (2000, 300), (50, 900), (1, 1), (896, 448)])
def test_pixels_match_xtuner(size):
    from xtuner.dataset.internvl_dataset import dynamic_preprocess as xtuner_tiles
    import torchvision.transforms as T

    image = Image.open(FOOD_IMAGES / "1f35c.webp").convert("RGB").resize(size)
    ours = dynamic_preprocess(image, 1, 12, 448, True)
    theirs = xtuner_tiles(image, 1, 12, 448, True)
    assert [t.size for t in ours] == [t.size for t in theirs]
    reference = torch.stack([T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))(T.ToTensor()(t)) for t in theirs])
    assert torch.allclose(to_tensor(ours), reference, atol=1e-6)


def test_transparent_background_becomes_white():
    pixels = load_image(FOOD_IMAGES / "1f95f.webp")  # RGBA artwork on a transparent background
    corner = pixels[0, :, 0, 0] * torch.tensor([0.229, 0.224, 0.225]) + torch.tensor([0.485, 0.456, 0.406])
    assert torch.allclose(corner, torch.ones(3), atol=1e-5)


def test_unreadable_image_names_the_file(tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    with pytest.raises(ValueError, match="broken.jpg could not be decoded"):
        load_image(broken)
    with pytest.raises(FileNotFoundError, match="missing.png"):
        load_image(tmp_path / "missing.png")
