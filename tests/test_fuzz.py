"""Fuzz-style checks (Hypothesis, bounded): odd pictures and odd records get a clear error or a right result,
never another exception, so new bad inputs are found by the suite rather than by users."""

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from course_lib.tiling import ImageLoadError, load_image, open_rgb, plan_tiles
from course_lib.vqa_data import DataError, validate_xtuner_records

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
MODES = ["1", "L", "P", "RGB", "RGBA", "LA", "PA", "CMYK", "YCbCr", "I", "I;16", "F", "LAB", "HSV"]


def _image(mode: str, width: int, height: int, seed: int, special: str) -> Image.Image:
    rng = np.random.default_rng(seed)
    if mode in ("I", "F"):
        low, high = {"I": (-(2**31), 2**31 - 1), "F": (-1e6, 1e6)}[mode]
        values = rng.uniform(low, high, (height, width)) if special == "wide" else rng.uniform(0, 1, (height, width))
        values = values.astype(np.float32 if mode == "F" else np.int32)
        if mode == "F" and special == "nan":
            values.flat[0] = np.nan
        return Image.fromarray(values, mode if mode == "F" else "I")
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65536, (height, width), dtype=np.uint16), "I;16")
    base = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")
    return base.convert(mode) if mode not in ("PA",) else base.convert("P").convert("PA")


@FUZZ
@given(
    mode=st.sampled_from(MODES),
    width=st.integers(1, 900),
    height=st.integers(1, 900),
    seed=st.integers(0, 2**16),
    special=st.sampled_from(["plain", "wide", "nan"]),
)
def test_any_picture_becomes_rgb_tiles_of_the_planned_count(mode, width, height, seed, special):
    image = _image(mode, width, height, seed, special)
    if mode == "F" and special == "nan" and width * height == 1:  # its one pixel is NaN: no picture at all
        with pytest.raises(ImageLoadError, match="NaN or infinite"):
            open_rgb(image)
        return
    rgb = open_rgb(image)
    assert rgb.mode == "RGB" and rgb.size == (width, height)
    pixels = load_image(image, max_num=4)
    assert pixels.shape == (plan_tiles(width, height, max_num=4).tiles, 3, 448, 448)
    assert bool(np.isfinite(pixels.numpy()).all())


@FUZZ
@given(data=st.binary(min_size=0, max_size=400), suffix=st.sampled_from([".jpg", ".png", ".webp", ".gif"]))
def test_any_bytes_as_an_image_file_open_or_fail_with_the_file_named(tmp_path, data, suffix):
    path = tmp_path / f"upload{suffix}"
    path.write_bytes(data)
    try:
        assert open_rgb(path).mode == "RGB"
    except ImageLoadError as error:
        assert str(path) in str(error)


TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30)
TURN = st.fixed_dictionaries(
    {},
    optional={
        "from": st.sampled_from(["human", "gpt", "user", "system", 3]),
        "value": st.one_of(TEXT, st.just("<image>\n图中的菜是什么？"), st.integers()),
    },
)
RECORD = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "image": st.one_of(
                st.just("dish.jpg"), st.just("missing.jpg"), TEXT, st.lists(st.just("dish.jpg"), max_size=2), st.none()
            ),
            "conversations": st.one_of(st.lists(TURN, max_size=4), TEXT, st.none()),
            "id": st.one_of(TEXT, st.integers()),
        },
    ),
    st.integers(),
    TEXT,
    st.none(),
)


@FUZZ
@given(records=st.one_of(st.lists(RECORD, max_size=5), RECORD, st.dictionaries(TEXT, RECORD, max_size=2)))
def test_any_record_shape_is_accepted_or_refused_with_a_data_error(tmp_path, records):
    Image.new("RGB", (16, 16), "orange").save(tmp_path / "dish.jpg")
    path = tmp_path / "data.json"
    path.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    try:
        accepted = validate_xtuner_records(path, tmp_path)
    except DataError as error:
        assert str(path) in str(error)
        return
    assert isinstance(accepted, list)
    for record in accepted:  # what passes has what XTuner needs
        turns = record["conversations"]
        assert [t["from"] for t in turns] == ["human", "gpt"] * (len(turns) // 2) + ["human"] * (len(turns) % 2)
        assert any(t["from"] == "gpt" and t["value"].strip() for t in turns)
