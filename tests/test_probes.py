"""The general-ability and hallucination probes: their records, their pictures, reading answers, POPE's figures."""

import json
from collections import Counter

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from course_lib import probes
from course_lib.evaluation import compare, score
from course_lib.probe_scores import (
    parse_colour,
    parse_count,
    parse_yes_no,
    plot_probe_summary,
    pope,
    pope_table,
    probe_summary,
)
from course_lib.vqa_data import DataError, load_eval_records, validate_xtuner_records


@pytest.fixture(scope="module")
def records(built):
    return load_eval_records(built / "eval" / "probe.json", built)


@pytest.mark.parametrize(
    "answer, expected",
    [
        ("Yes.", "yes"),
        ("No.", "no"),
        ("No, there is no sushi in the image.", "no"),
        ("yes, there is", "yes"),
        ("There is not any.", "no"),
        ("有。", "yes"),
        ("图中有饺子。", "yes"),
        ("没有。", "no"),
        ("图中没有寿司", "no"),
        ("是的", "yes"),
        ("不是", "no"),
        ("否", "no"),
        ("图中的菜是饺子。", None),
        ("This is sushi.", None),
        ("", None),  # an answer to another question
    ],
)
def test_yes_and_no_are_read_in_both_languages(answer, expected):
    assert parse_yes_no(answer) == expected


@pytest.mark.parametrize(
    "answer, expected",
    [
        ("Red.", "red"),
        ("The shapes are purple.", "purple"),
        ("violet", "purple"),
        ("红色。", "red"),
        ("是蓝色的", "blue"),
        ("red and blue", None),
        ("bored", None),
        ("I see shapes.", None),
    ],
)
def test_colours_are_read_whole_words_and_one_only(answer, expected):
    assert parse_colour(answer) == expected


@pytest.mark.parametrize(
    "answer, expected",
    [
        ("3.", "3"),
        ("There are three shapes.", "3"),
        ("3个。", "3"),
        ("图中有两个图形", "2"),
        ("一个", "1"),
        ("one or two", None),
        ("someone", None),
        ("shapes", None),
    ],
)
def test_counts_are_read_as_digits_or_words(answer, expected):
    assert parse_count(answer) == expected


def test_the_probe_records_pair_each_picture_with_its_own_dish_and_an_absent_one(records, dishes):
    by_id = {d["id"]: d for d in dishes}
    yes_no = [r for r in records if r["kind"] == "yesno"]
    assert Counter(r["answer"] for r in yes_no) == {"yes": 144, "no": 144}  # POPE's balance: half are yes
    for record in yes_no:
        asked = by_id[record["asked"]]
        assert asked[record["lang"]] in record["question"]
        assert (record["asked"] == record["dish"]) == (record["answer"] == "yes")
        if record["sampling"] == "adversarial":
            assert asked["group"] == record["group"]
        elif record["sampling"] == "random":
            assert asked["group"] != record["group"]
    assert {r["sampling"] for r in yes_no} == {"present", "random", "adversarial"}
    assert {r["image"].split("/")[1] for r in yes_no} == {"test"}  # held-out pictures only


def test_the_pre_training_never_says_yes_about_a_new_dish(built, dishes):
    """The course model must not learn a new dish from the probes' training records: a new dish is only named
    in a "no" (about a base dish's picture), and new-dish pictures are asked about base dishes only."""
    new = {d["id"]: d for d in dishes if d["group"] == "new"}
    train = validate_xtuner_records(built / "xtuner" / "pretrain_base.json", built)
    probe = [r for r in train if "-yesno-" in r["id"] or "-shapes-" in r["id"]]
    assert len(probe) == 12 * 32 + 6 * 8 + 6 * 3 * 6
    shapes = [r for r in probe if "-shapes-" in r["id"]]
    firsts = Counter(r["conversations"][0]["value"].split("\n", 1)[1] for r in shapes)
    assert set(firsts) == {probes.COLOUR_QUESTION[lang] for lang in ("zh", "en")} | {
        probes.COUNT_QUESTION[lang] for lang in ("zh", "en")
    }
    assert len(set(firsts.values())) == 1  # each question first as often as the others, as the probes ask it alone
    for record in probe:
        turns = record["conversations"]
        for question, reply in zip(turns[::2], turns[1::2]):
            named_new = [d for d in new.values() if d["zh"] in question["value"] or d["en"] in question["value"]]
            if named_new:
                assert parse_yes_no(reply["value"]) == "no", record["id"]
    finetune = json.loads((built / "xtuner" / "finetune_new.json").read_text(encoding="utf-8"))
    assert not [r for r in finetune if "-yesno-" in r["id"] or "-shapes-" in r["id"]]  # the fine-tune never trains them


def test_every_training_reply_reads_as_what_it_means(built):
    """The course model's yes/no replies name what it sees first ("This is sushi, so no."): the scorer must read
    each one as its yes or no, and the colour and count replies as their colour and count."""
    train = json.loads((built / "xtuner" / "pretrain_base.json").read_text(encoding="utf-8"))
    replies = [t["value"] for r in train if "-yesno-" in r["id"] for t in r["conversations"][1::2]]
    assert len(replies) == (12 * 32 + 6 * 8) * 2
    assert {parse_yes_no(reply) for reply in replies} == {"yes", "no"}
    for lang in ("zh", "en"):
        assert parse_yes_no(probes.yes_no_reply("yes", "寿司" if lang == "zh" else "sushi", lang)) == "yes"
        assert parse_yes_no(probes.yes_no_reply("no", "寿司" if lang == "zh" else "sushi", lang)) == "no"
        assert parse_yes_no(probes.UNKNOWN_NO_REPLY[lang]) == "no"
        for colour in probes.COLOURS:
            assert parse_colour(probes.colour_reply(colour, lang)) == colour
        for count in probes.COUNTS:
            assert parse_count(probes.count_reply(count, lang)) == str(count)


def test_shape_pictures_show_their_colour_and_count(built, records):
    shapes = [r for r in records if r["group"] == "general"]
    assert Counter(r["kind"] for r in shapes) == {"colour": 72, "count": 72}
    for record in shapes[::8]:
        with Image.open(built / record["image"]) as picture:
            pixels = np.asarray(picture.convert("RGB"), dtype=int)
        assert picture.size == (224, 224)
        saturated = (pixels.max(-1) - pixels.min(-1) > 60) | (pixels.max(-1) < 90)  # the shapes, not the background
        painted = pixels[saturated]
        count = int(record["image"].rsplit("/", 1)[1].split("_")[1])  # images/shapes/test/<colour>_<count>_<k>.png
        assert 0.6 * 1600 * count < len(painted) < 1.3 * 1600 * count  # equal areas: the area tells the count
        if record["kind"] == "count":
            assert ndimage.label(saturated)[1] == int(record["answer"]), record["image"]
        if record["kind"] == "colour":
            reference = np.array(probes.COLOURS[record["answer"]][1])
            assert np.abs(painted.mean(0) - reference).max() < 25, record["image"]


def test_a_probe_record_with_a_wrong_answer_is_named(tmp_path, records, built):
    bad = dict(records[0], answer="maybe")
    (tmp_path / "probe.json").write_text(json.dumps([bad]), encoding="utf-8")
    with pytest.raises(DataError, match=r"record 0 .*field 'answer' is 'maybe'; for kind 'yesno' it is one of yes, no"):
        load_eval_records(tmp_path / "probe.json", built)


def _answers(records, yes_to_everything=False):
    """A model that reads every picture right, or one that says yes to everything."""
    out = []
    for r in records:
        if r["kind"] == "yesno":
            out.append("Yes." if yes_to_everything or r["answer"] == "yes" else "No.")
        elif r["kind"] == "colour":
            out.append(probes.colour_reply(r["answer"], r["lang"]))
        else:
            out.append(probes.count_reply(int(r["answer"]), r["lang"]))
    return out


def test_pope_figures_tell_a_model_that_says_yes_to_everything(records, dishes):
    honest = score(records, _answers(records), dishes)
    fooled = score(records, _answers(records, yes_to_everything=True), dishes)
    assert pope(honest.rows) == {
        "n": 288,
        "accuracy": 1.0,
        "precision": 1.0,
        "recall": 1.0,
        "f1": 1.0,
        "yes_ratio": 0.5,
        "unparsed": 0,
        "false_yes": 0,
    }
    # POPE's tell-tale: accuracy 50%, recall 100%, precision 50%, and every answer yes
    assert pope(fooled.rows) == {
        "n": 288,
        "accuracy": 0.5,
        "precision": 0.5,
        "recall": 1.0,
        "f1": pytest.approx(2 / 3),
        "yes_ratio": 1.0,
        "unparsed": 0,
        "false_yes": 144,
    }
    table = pope_table(fooled)
    assert set(table) == {
        "new",
        "new, absent from the other group",
        "new, absent from the same group",
        "base",
        "base, absent from the other group",
        "base, absent from the same group",
        "all",
    }
    # 2 pictures per dish, a yes and a no, zh and en
    assert table["base, absent from the other group"]["n"] == 12 * 2 * 2 * 2
    assert "yes" in table.text and "100.0%" in table.text
    summary = probe_summary(honest, fooled)
    assert summary["said yes, new dishes (50% is right)"] == {"before": 0.5, "after": 1.0}
    assert summary["shapes: colour"] == {"before": 1.0, "after": 1.0}
    fig = plot_probe_summary(summary)
    assert len(fig.axes[0].patches) == 2 * len(summary)
    # the kit's paired comparison reads the probe rows like any other
    assert compare(honest, fooled)["base/test/yesno"]["broken"] == 96


def test_an_answer_to_another_question_is_unparsed_and_wrong(records, dishes):
    answers = ["图中的菜是饺子。" if r["kind"] == "yesno" else "" for r in records]
    result = score(records, answers, dishes)
    assert result.stats()["unparsed"] == len(records) and result.stats()["correct"] == 0
    assert np.isnan(pope(result.rows)["precision"])  # it never said yes


def test_every_plan_evaluates_the_probes_from_the_kits_food_set(tmp_path):
    """Tiny and real plans both carry the probes with their image folder (lesson 11 evaluates every set)."""
    from course_lib.config import resolve
    from course_lib.finetune.plan import PROBES, plan_finetune

    env = {"COURSE_MODE": "tiny", "COURSE_CACHE_DIR": str(tmp_path)}
    plan = plan_finetune(resolve(env=env, has_cuda=False), log=lambda *_: None)
    assert set(plan.eval_records) == set(plan.eval_roots) and PROBES in plan.eval_records
    assert (plan.eval_roots[PROBES] / plan.eval_records[PROBES][0]["image"]).is_file()
