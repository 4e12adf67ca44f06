"""The run-level training-data check (course_lib.finetune.data_check), through new_run as every run passes it:
pictures XTuner would read differently are normalised into the run folder, and records that would train on
nothing, or without their picture, under the run's tokenizer, template and max_length are refused."""

import json

import numpy as np
import pytest
from PIL import Image

from course_lib.finetune.runner import new_run
from course_lib.sample_pictures import awkward_pictures
from course_lib.tiling import open_rgb, plain_reading_differs
from course_lib.vqa_data import DataError

QUESTION = {"from": "human", "value": "<image>\n这是什么？"}
ANSWER = {"from": "gpt", "value": "饺子"}
LONG_TURN = 2650  # "这是什么菜？" is 3 tokens: 7950 tokens of text; the 120x60 picture (2 tiles + thumbnail, 768
# tokens) after it passes 8192


@pytest.fixture
def folder(tmp_path):
    images = tmp_path / "images"
    awkward_pictures(images)
    return images


def _write(tmp_path, records, name="train.json"):
    path = tmp_path / name
    path.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    return path


def _records(image="plain.png", n=56, conversations=(QUESTION, ANSWER)):
    return [{"id": f"{image.split('.')[0]}{i}", "image": image, "conversations": list(conversations)} for i in range(n)]


def test_the_plain_reading_and_the_kits_are_compared_from_the_header(folder):
    assert plain_reading_differs(folder / "plain.png") is None
    assert plain_reading_differs(folder / "phone.jpg").startswith("EXIF orientation 6")
    assert "transparency" in plain_reading_differs(folder / "cutout.png")


def test_pictures_xtuner_would_read_differently_are_normalised_into_the_run(tiny_path, folder, tmp_path):
    records = _records() + _records("phone.jpg", 4) + _records("cutout.png", 4)
    data = _write(tmp_path, records)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    run = new_run("food", "tiny", tiny_path, data, folder, tmp_path / "runs")

    info = run.info()
    assert sorted(info["normalised_images"]) == ["cutout.png", "phone.jpg"]
    assert info["train_json"] == str(data.resolve())  # the user's file is still what the run says it trains on
    trained = json.loads(open(info["trained_on"], encoding="utf-8").read())
    assert f'data_path = "{info["trained_on"]}"' in run.config.read_text()
    assert [r["id"] for r in trained] == [r["id"] for r in records]
    for record in trained:
        original = folder / next(r for r in records if r["id"] == record["id"])["image"]
        # what XTuner's dataset does: os.path.join(image_folder, image), then a plain convert("RGB")
        xtuner_sees = Image.open(folder / record["image"]).convert("RGB")
        assert np.array_equal(np.asarray(xtuner_sees), np.asarray(open_rgb(original))), record["image"]
    phone = next(r for r in trained if r["id"] == "phone0")
    assert Image.open(phone["image"]).size == (60, 120)  # upright: the grid is 1x2, as the kit serves it
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # nothing of the user's was changed


def test_a_question_that_leaves_no_answer_after_the_cut_is_refused(tiny_path, folder, tmp_path):
    records = _records()
    long_question = {"from": "human", "value": "<image>\n" + "这是什么菜？" * 3000}
    records[5] = dict(records[5], conversations=[long_question, ANSWER])
    data = _write(tmp_path, records)
    with pytest.raises(
        DataError,
        match=r"record 5 \(id 'plain5'\): after cutting to max_length = 8192 tokens no answer "
        r"token is left",
    ):
        new_run("food", "tiny", tiny_path, data, folder, tmp_path / "runs")
    assert list((tmp_path / "runs").iterdir()) == []  # no run folder is left behind


def test_an_image_tag_past_the_cut_is_refused(tiny_path, folder, tmp_path):
    records = _records()
    # The first turn's answer is learned; the second turn's picture starts past the cut.
    records[7] = dict(
        records[7], conversations=[{"from": "human", "value": "这是什么菜？" * LONG_TURN}, ANSWER, QUESTION, ANSWER]
    )
    data = _write(tmp_path, records)
    with pytest.raises(
        DataError, match=r"record 7 \(id 'plain7'\): its 768 image tokens do not fit in max_length = 8192"
    ):
        new_run("food", "tiny", tiny_path, data, folder, tmp_path / "runs")
    assert list((tmp_path / "runs").iterdir()) == []


def test_a_jsonl_file_is_checked_and_trained_on_as_xtuner_reads_it(tiny_path, folder, tmp_path):
    records = _records()
    data = tmp_path / "train.jsonl"
    data.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n", encoding="utf-8")
    run = new_run("food", "tiny", tiny_path, data, folder, tmp_path / "runs")
    assert run.info()["normalised_images"] == {} and "trained_on" not in run.info()
    assert f'data_path = "{data.resolve()}"' in run.config.read_text()
