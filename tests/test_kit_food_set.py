"""The embedded food VQA set: deterministic, the promised counts and formats, fair questions, XTuner loads it."""

import json
from collections import Counter, defaultdict

import numpy as np
import pytest
from PIL import Image

from course_lib import kit_food_set
from course_lib.kit_food_set import dataset_summary, ensure_food_vqa
from course_lib.question_format import LETTERS
from course_lib.vqa_data import load_eval_records, validate_xtuner_records

PER_DISH = kit_food_set.SPEC["per_dish"]


def _json(path):
    return json.loads(path.read_text(encoding="utf-8"))


def _files(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_building_twice_gives_identical_files_and_a_second_call_reuses_the_folder(built, tmp_path):
    # what a killed build leaves behind: a staging folder, and a target folder without build_info.json
    (tmp_path / f"{built.name}-building-x1y2").mkdir()
    (tmp_path / built.name / "images").mkdir(parents=True)
    (tmp_path / built.name / "images" / "half.jpg").write_bytes(b"\xff\xd8")
    again = ensure_food_vqa(tmp_path, log=lambda *a: None)
    assert again.name == built.name and again.name.startswith("food_vqa-")
    assert _files(again) == _files(built)
    messages = []
    assert ensure_food_vqa(tmp_path, log=messages.append) == again and messages == []  # cached: no rebuild
    assert not [p for p in tmp_path.iterdir() if "-building-" in p.name]  # no staging left behind


def test_dishes_and_counts(built, dishes):
    groups = Counter(d["group"] for d in dishes)
    assert groups == {"base": 12, "new": 6}
    assert all(set(d) == {"id", "zh", "en", "group", "cuisine"} for d in dishes)
    summary = dataset_summary(built)
    for split in ("train", "test", "ood"):
        assert summary["images"][split] == {g: n * PER_DISH[split] for g, n in groups.items()}
    assert summary["eval"]["test"]["new"] == {"mc": 6 * 8 * 2, "open": 6 * 8 * 2}  # 6 dishes x 8 images x zh/en
    pretrain = summary["training"]["pretrain_base"]
    assert pretrain["new"] == 0 and pretrain["unknown"] == 6 * PER_DISH["train"]  # one per new-dish picture
    # the probes' skills (course_lib.probes): every base picture, a quarter of the new ones, every shape
    assert pretrain["probe"] == 12 * PER_DISH["train"] + 6 * PER_DISH["train"] // 4 + 6 * 3 * 6
    assert pretrain["records"] == pretrain["base"] + pretrain["unknown"] + pretrain["probe"]
    assert summary["eval"]["probe"] == {
        "records": 18 * 4 * 2 * 2 + 6 * 3 * 2 * 2 * 2,
        "yesno": 18 * 4 * 2 * 2,
        "colour": 6 * 3 * 2 * 2,
        "count": 6 * 3 * 2 * 2,
    }
    finetune = summary["training"]["finetune_new"]
    assert finetune["unknown"] == 0
    assert finetune["base"] / finetune["records"] == pytest.approx(kit_food_set.SPEC["replay_fraction"], abs=0.01)
    for name in ("LICENSE-fluent-emoji-3d.txt", "LICENSE-noto-emoji.txt", "README.md"):
        assert (built / name).is_file()
    assert "MIT" in (built / "README.md").read_text(encoding="utf-8")


def test_images_are_square_224_rgb_jpegs(built):
    paths = sorted(p for p in (built / "images").rglob("*") if "shapes" not in p.parts)
    assert len(paths) == 18 * sum(PER_DISH.values()) + 3  # and the three split folders
    for path in paths:
        if path.is_file():
            with Image.open(path) as image:
                assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (224, 224)), path


def _small(path):
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB").resize((16, 16), Image.BILINEAR), dtype=np.float32)


def test_train_and_test_images_differ(built):
    train = {p.name: p.read_bytes() for p in (built / "images" / "train").iterdir()}
    test = {p.name: p.read_bytes() for p in (built / "images" / "test").iterdir()}
    assert not set(train.values()) & set(test.values())
    train_small = np.stack([_small(built / "images" / "train" / n) for n in sorted(train)])
    for name in sorted(test):
        distance = np.abs(train_small - _small(built / "images" / "test" / name)).mean(axis=(1, 2, 3))
        assert distance.min() > 3.0, f"test/{name} is nearly identical to train/{sorted(train)[distance.argmin()]}"


def test_distractors_come_from_the_same_group_and_letters_are_balanced(built, dishes):
    by_name = {(lang, d[lang]): d for d in dishes for lang in ("zh", "en")}
    for split in ("test", "ood"):
        records = load_eval_records(built / "eval" / f"{split}.json", image_folder=built)
        letters = defaultdict(Counter)
        for r in records:
            dish = next(d for d in dishes if d["id"] == r["dish"])
            assert r["group"] == dish["group"] and r["split"] == split
            assert r["image"].startswith(f"images/{split}/{r['dish']}_") and r["image"].endswith(".jpg")
            assert r["answer_text"] == dish[r["lang"]]
            if r["kind"] == "mc":
                options = [by_name[(r["lang"], c)] for c in r["choices"]]
                assert len({o["id"] for o in options}) == 4
                assert r["choice_dishes"] == [o["id"] for o in options]  # the options' dishes, as fields
                assert r["choice_dishes"][LETTERS.index(r["answer"])] == r["dish"]
                assert {o["group"] for o in options} == {dish["group"]}, r["id"]
                assert r["choices"][LETTERS.index(r["answer"])] == dish[r["lang"]]
                assert r["question"].startswith(kit_food_set.MC_QUESTION[r["lang"]])
                letters[(r["group"], r["lang"])][r["answer"]] += 1
            else:
                assert r["answer"] == r["dish"] and "choices" not in r
                assert r["question"] == kit_food_set.OPEN_QUESTION[r["lang"]]
        for key, counts in letters.items():
            assert len(set(counts.values())) == 1 and len(counts) == 4, (split, key, counts)


def test_training_records_pass_validation_and_speak_both_languages(built, dishes):
    groups = {d["id"]: d["group"] for d in dishes}
    pretrain = validate_xtuner_records(built / "xtuner" / "pretrain_base.json", built)
    finetune = validate_xtuner_records(built / "xtuner" / "finetune_new.json", built)

    def dish(record):
        return record["image"].split("/")[-1].rsplit("_", 1)[0]

    probe = [r for r in pretrain if r["kind"] not in kit_food_set.KINDS]  # tests/test_probes.py
    pretrain = [r for r in pretrain if r not in probe]
    unknown = [r for r in pretrain if r.get("unknown")]
    assert all(dish(r) == r["dish"] and groups[r["dish"]] == r["group"] for r in pretrain + finetune)
    named = [r for r in pretrain if r not in unknown]
    assert {groups[dish(r)] for r in named} == {"base"} and {groups[dish(r)] for r in unknown} == {"new"}
    assert {r["conversations"][1]["value"] for r in unknown} == set(kit_food_set.UNKNOWN_ANSWER.values())
    new_names = {d[lang] for d in dishes if d["group"] == "new" for lang in ("zh", "en")}
    assert not [r["id"] for r in pretrain if any(name in r["conversations"][1]["value"] for name in new_names)]
    assert all(r["image"].startswith("images/train/") for r in pretrain + finetune)
    answers = {r["conversations"][1]["value"] for r in named}
    assert "图中的菜是寿司。" in answers and "This is sushi." in answers
    assert "寿司" in answers and "sushi" in answers  # multiple choice: the chosen option's dish name
    new_dishes = {dish(r) for r in finetune} - {dish(r) for r in named}
    assert new_dishes == {d["id"] for d in dishes if d["group"] == "new"}


def test_xtuner_loads_the_pretraining_file_with_256_image_tokens_each(built, tiny_path):
    import copy

    from mmengine.config import ConfigDict
    from xtuner.dataset import InternVL_V1_5_Dataset
    from xtuner.utils import PROMPT_TEMPLATE

    dataset = InternVL_V1_5_Dataset(
        model_path=str(tiny_path),
        template=ConfigDict(PROMPT_TEMPLATE.internlm2_chat),
        data_paths=str(built / "xtuner" / "pretrain_base.json"),
        image_folders=str(built),
        max_length=8192,
    )
    tokenizer = dataset.tokenizer
    context = tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>")
    assert len(dataset) == dataset_summary(built)["training"]["pretrain_base"]["records"]
    # The full pipeline (image -> tiles -> pixel values, tokens, labels) for one record per dish and kind;
    # prepare_data, because __getitem__ would silently swap a broken record for another one.
    sample = {}
    for index, record in enumerate(dataset.data):
        sample.setdefault((record["dish"], record["kind"]), index)
    # both kinds: base dishes, and the new dishes' "I do not know" records; the probes' yes/no about every dish
    # and the shapes
    assert len(sample) == 12 * 2 + 6 * 2 + 18 + 1
    for index in sample.values():
        item = dataset.prepare_data(index)
        assert item is not None, dataset.data[index]["image"]
        assert item["pixel_values"].shape == (1, 3, 448, 448)  # a square 224 image is one tile, no thumbnail
        assert item["input_ids"].count(context) == 256
    # Every record's text through XTuner's own tokenisation, with the image string of one tile.
    one_tile = dataset.IMG_START_TOKEN + dataset.IMG_CONTEXT_TOKEN * 256 + dataset.IMG_END_TOKEN
    for record in dataset.data:
        item = dataset.get_inputid_labels(copy.deepcopy(record["conversations"]), one_tile)
        assert item["input_ids"].count(context) == 256
        answer = [t for t, label in zip(item["input_ids"], item["labels"]) if label != -100]
        replies = [turn["value"] for turn in record["conversations"][1::2]]  # every gpt turn is trained
        assert tokenizer.decode(answer) == "".join(reply + "<|im_end|>" for reply in replies)


def test_a_multiple_choice_reply_is_one_of_its_options_and_scores_as_its_letter(built, dishes):
    from course_lib.evaluation import parse_choice

    records = _json(built / "xtuner" / "finetune_new.json")
    mc = [r for r in records if r["kind"] == "mc"]
    assert mc
    for record in mc:
        question, reply = (turn["value"] for turn in record["conversations"])
        options = [line[3:] for line in question.splitlines() if line[:3] in {f"{letter}. " for letter in LETTERS}]
        assert len(options) == 4 and reply in options, record["id"]
        assert parse_choice(reply, options, dishes) == LETTERS[options.index(reply)]


def test_backgrounds_are_light():
    rng = np.random.default_rng(0)
    low, high = kit_food_set.SPEC["background_channels"]
    for _ in range(20):
        pixels = np.asarray(kit_food_set.rendering._background(rng, 64), np.float32)
        assert pixels.mean() >= low - 20 and pixels.max() <= high - 1


def test_open_training_questions_go_on_to_the_cuisine(built, dishes):
    from course_lib.kit_food_set import CUISINE_NAMES, FOLLOW_UP_QUESTIONS, OPEN_QUESTIONS

    cuisine = {d["id"]: d["cuisine"] for d in dishes}
    assert set(cuisine.values()) <= set(CUISINE_NAMES)
    for name in ("pretrain_base", "finetune_new"):
        records = json.loads((built / "xtuner" / f"{name}.json").read_text(encoding="utf-8"))
        opens = [r for r in records if r["kind"] == "open" and not r.get("unknown")]
        assert opens
        for record in records:  # the new dishes' refusals, in both kinds, go on refusing in the second turn
            if record.get("unknown"):
                lang = record["lang"]
                replies = [t["value"] for t in record["conversations"][1::2]]
                assert replies == [kit_food_set.UNKNOWN_ANSWER[lang]] * len(replies) and len(replies) in (1, 2)
        for record in opens:
            lang, turns = record["lang"], record["conversations"]
            assert [t["from"] for t in turns] == ["human", "gpt", "human", "gpt"]
            assert turns[0]["value"].removeprefix("<image>\n") in OPEN_QUESTIONS[lang]
            assert turns[2]["value"] in FOLLOW_UP_QUESTIONS[lang] and "<image>" not in turns[2]["value"]
            assert CUISINE_NAMES[cuisine[record["dish"]]][lang] in turns[3]["value"]
        wordings = {r["conversations"][0]["value"] for r in opens}
        assert len(wordings) == sum(len(q) for q in OPEN_QUESTIONS.values())  # every wording is used
