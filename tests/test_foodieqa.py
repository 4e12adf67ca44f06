"""The FoodieQA adapter, on small records written here in the release's format (no real FoodieQA data)."""

import json

import pytest
from PIL import Image

from course_lib.foodieqa import LicenceError, load_sivqa, split_by_image, to_xtuner_training, write_fake_release
from course_lib.vqa_data import DataError, load_eval_records, validate_xtuner_records


def _record(number, food_file, answer="1", english=True):
    record = {
        "question": "去哪个地方游玩时应当品尝当地的特色美食图片中的食物？",
        "choices": ["广东", "黑龙江", "四川", "新疆"],
        "answer": answer,
        "question_type": "region-2",
        "food_name": f"测试菜{number}",
        "question_id": f"vqa-{number}",
        "food_meta": {
            "main_ingredient": ["猪肉"],
            "id": 200 + number,
            "food_name": f"测试菜{number}",
            "food_type": "东北菜",
            "food_location": "餐馆",
            "food_file": food_file,
        },
    }
    if english:
        record.update(
            question_en="Where should you go to taste the food in the picture as a local specialty?",
            choices_en=["Guangdong", "Heilongjiang", "Sichuan", "Xinjiang"],
        )
    return record


@pytest.fixture
def release(tmp_path):
    """Four questions about three pictures; one file sits directly under images/ though food_file omits it."""
    (tmp_path / "images").mkdir()
    for name, colour in (("a.jpg", "red"), ("b.jpg", "green"), ("c.jpg", "blue")):
        Image.new("RGB", (40, 30), colour).save(tmp_path / "images" / name)
    records = [
        _record(0, "images/a.jpg"),
        _record(1, "images/b.jpg", answer="3"),
        _record(2, "c.jpg", english=False),
        _record(3, "images/a.jpg", answer="0"),
    ]
    (tmp_path / "sivqa_tidy.json").write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    return tmp_path


def test_load_sivqa_gives_eval_records_and_prints_the_licence(release, capsys):
    records = load_sivqa(release)
    assert "CC BY-NC-ND 4.0" in capsys.readouterr().out
    assert [r["id"] for r in records] == [
        "foodieqa-vqa-0-mc-zh",
        "foodieqa-vqa-0-mc-en",
        "foodieqa-vqa-1-mc-zh",
        "foodieqa-vqa-1-mc-en",
        "foodieqa-vqa-2-mc-zh",
        "foodieqa-vqa-3-mc-zh",
        "foodieqa-vqa-3-mc-en",
    ]
    first, second_en, third = records[0], records[3], records[4]
    assert first["answer"] == "B" and first["answer_text"] == "黑龙江" and first["dish"] == "200"
    assert (first["group"], first["split"], first["kind"], first["lang"]) == ("foodieqa", "test", "mc", "zh")
    assert first["question"].startswith("去哪个地方") and "\nB. 黑龙江\n" in first["question"]
    assert second_en["answer"] == "D" and second_en["answer_text"] == "Xinjiang" and second_en["lang"] == "en"
    assert third["image"] == "images/c.jpg"  # found under images/
    path = release / "as_eval.json"
    path.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    assert load_eval_records(path, image_folder=release) == records  # the kit's evaluation schema


def test_missing_images_are_named(release):
    (release / "images" / "b.jpg").unlink()
    with pytest.raises(DataError, match=r"record 1 \(question_id 'vqa-1'\): field 'food_meta.food_file'"):
        load_sivqa(release, log=lambda *a: None)
    assert len(load_sivqa(release, require_images=False, log=lambda *a: None)) == 5


def test_wrong_folder_and_bad_records(tmp_path, release):
    with pytest.raises(DataError, match="sivqa_tidy.json"):
        load_sivqa(tmp_path / "nowhere", log=lambda *a: None)
    outer = tmp_path / "download"
    (outer / "FoodieQA").mkdir(parents=True)
    (outer / "FoodieQA" / "sivqa_tidy.json").write_text("[]", encoding="utf-8")
    with pytest.raises(DataError, match="it is in .*FoodieQA: point at that folder"):
        load_sivqa(outer, log=lambda *a: None)
    records = json.loads((release / "sivqa_tidy.json").read_text(encoding="utf-8"))
    records[2]["answer"] = "4"
    del records[3]["choices"]
    (release / "sivqa_tidy.json").write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(DataError) as caught:
        load_sivqa(release, log=lambda *a: None)
    assert "record 2 (question_id 'vqa-2'): field 'answer' is '4'" in str(caught.value)
    assert "record 3 (question_id 'vqa-3'): field 'choices' is missing" in str(caught.value)


def test_training_needs_the_licence_acknowledged_and_never_overwrites(release, tmp_path):
    out = tmp_path / "out" / "foodieqa_train.json"
    with pytest.raises(LicenceError, match="Evaluation only") as caught:
        to_xtuner_training(release, out)
    assert "seed lesson" in str(caught.value) and not out.exists()
    to_xtuner_training(release, out, acknowledge_licence=True, log=lambda *a: None)
    records = validate_xtuner_records(out, release)
    assert records[1]["conversations"] == [
        {"from": "human", "value": "去哪个地方游玩时应当品尝当地的特色美食图片中的食物？\n<image>"},
        {"from": "gpt", "value": "新疆，图中的菜是测试菜1"},
    ]
    before = out.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        to_xtuner_training(release, out, acknowledge_licence=True, log=lambda *a: None)
    assert out.read_bytes() == before
    to_xtuner_training(
        release, out, acknowledge_licence=True, seed_lesson_format=False, overwrite=True, log=lambda *a: None
    )
    record = validate_xtuner_records(out, release)[1]
    assert (
        record["conversations"][0]["value"].startswith("<image>\n去哪个地方")
        and "\nD. 新疆\n" in record["conversations"][0]["value"]
    )
    assert record["conversations"][1]["value"] == "D. 新疆"


def test_split_by_image_never_shares_an_image(release):
    records = load_sivqa(release, log=lambda *a: None)
    for seed in range(5):
        train, test = split_by_image(records, test_fraction=0.34, seed=seed)
        assert len(train) + len(test) == len(records)
        assert train and test and not {r["image"] for r in train} & {r["image"] for r in test}
    assert split_by_image(records, 0.34, seed=1) == split_by_image(records, 0.34, seed=1)
    assert split_by_image(records, 0.0)[1] == []
    with pytest.raises(ValueError, match="test_fraction"):
        split_by_image(records, 1.0)


def test_fake_release_is_labelled_and_loads(tmp_path):
    folder = write_fake_release(tmp_path / "fake")
    assert "NOT FoodieQA data" in (folder / "FAKE_RELEASE.txt").read_text(encoding="utf-8")
    records = load_sivqa(folder, log=lambda *a: None)
    assert len(records) == 9  # five questions, four of them also in English
    assert all(r["id"].startswith("foodieqa-fake-") for r in records)


def _xtuner_copy(release, out, count=80):
    """FoodieQA in XTuner's format, written by hand (as a user might), enough records for a tiny run."""
    record = {
        "image": "images/a.jpg",
        "conversations": [{"from": "human", "value": "<image>\n这是什么菜？"}, {"from": "gpt", "value": "测试菜1"}],
    }
    out.write_text(json.dumps([record] * count, ensure_ascii=False), encoding="utf-8")
    return out


def test_no_path_trains_on_foodieqa_without_the_acknowledgement(release, tmp_path, tiny_path):
    """The gate sits where data enters training (runner.new_run): hand-made files, hand-made plans and files
    left in the cache by an earlier acknowledged plan are all refused; nothing is created."""
    from course_lib.finetune.plan import FinetunePlan, start_finetune
    from course_lib.finetune.runner import new_run

    hand_made = _xtuner_copy(release, tmp_path / "foodieqa_xtuner.json")
    left_in_cache = tmp_path / "cache" / "foodieqa" / "train_xtuner.json"
    left_in_cache.parent.mkdir(parents=True)
    to_xtuner_training(release, left_in_cache, acknowledge_licence=True, log=lambda *a: None)
    runs = tmp_path / "runs"
    for data, folder in ((hand_made, release), (hand_made, release / "images"), (left_in_cache, release)):
        with pytest.raises(LicenceError, match="is a FoodieQA release.*acknowledge_foodieqa_licence=True"):
            new_run("food", "tiny", tiny_path, data, folder, runs)
    plan = FinetunePlan("tiny", "tiny", tiny_path, hand_made, release, {}, {}, [], tmp_path / "cache")
    with pytest.raises(LicenceError, match="Evaluation only"):
        start_finetune(plan, runs=runs)
    assert not runs.exists()
    run = new_run("food", "tiny", tiny_path, hand_made, release, runs, acknowledge_foodieqa_licence=True)
    assert run.info()["foodieqa_licence_acknowledged"] is True


def test_the_committed_gpu_config_trains_on_the_kits_own_set():
    from course_lib.finetune import xtuner_config
    from course_lib.finetune.plan import KIT_SET_LINK

    text = xtuner_config.config_path("real").read_text(encoding="utf-8")
    assert "FoodieQA" not in text.split("prompt_template =")[0]
    assert f'data_path = ".cache/{KIT_SET_LINK}/xtuner/finetune_new.json"' in text


def test_the_kit_set_link_points_at_the_current_build(tmp_path):
    from course_lib.finetune import plan as finetune_plan

    data = finetune_plan.linked_food_set(tmp_path, log=lambda *a: None)
    link = tmp_path / finetune_plan.KIT_SET_LINK
    assert link.is_symlink() and link.resolve() == data.resolve() and (link / "xtuner" / "finetune_new.json").is_file()
    assert finetune_plan.linked_food_set(tmp_path, log=lambda *a: None) == data  # idempotent
