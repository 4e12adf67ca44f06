"""Evaluation: answer parsing (letters, option texts, dish names), Wilson intervals, scoring, JSON, before/after
comparison, plots, and predict/evaluate on the tiny model (batched answers equal one-at-a-time chat)."""

import math
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from course_lib.evaluation import (  # noqa: E402
    EvalResult,
    choice_dish,
    common_answers,
    compare,
    dish_grid_items,
    displayable,
    evaluate,
    find_letters,
    fixed_and_broken,
    mcnemar_p,
    parse_answer,
    parse_choice,
    parse_dish,
    plot_accuracy,
    plot_confusion,
    plot_dish_grid,
    plot_examples,
    predict,
    score,
    what_it_named,
    wilson_interval,
)

DISHES = [
    {"id": "dumplings", "zh": "饺子", "en": "dumplings", "group": "base", "cuisine": "Chinese"},
    {"id": "mooncake", "zh": "月饼", "en": "mooncake", "group": "base", "cuisine": "Chinese"},
    {"id": "milk_tea", "zh": "奶茶", "en": "milk tea", "group": "new", "cuisine": "Chinese"},
    {"id": "hotpot", "zh": "火锅", "en": "hot pot", "group": "new", "cuisine": "Chinese"},
    {"id": "rice", "zh": "米饭", "en": "steamed rice", "group": "base", "cuisine": "Chinese"},
    {"id": "fried_rice", "zh": "炒饭", "en": "fried rice", "group": "new", "cuisine": "Chinese"},
]
ZH = ["饺子", "月饼", "奶茶", "火锅"]
EN = ["dumplings", "mooncake", "milk tea", "hot pot"]

MC_CASES = [
    # explicit letters
    ("A", "A"),
    ("A.", "A"),
    ("(B)", "B"),
    ("答案是C", "C"),
    ("选D", "D"),
    ("C. 月饼", "C"),
    ("The answer is B: mooncake", "B"),
    ("b", "B"),
    ("a", "A"),
    ("Ａ", "A"),
    ("（Ｂ）", "B"),
    ("答案：Ｄ．火锅", "D"),
    ("选项A：饺子", "A"),
    ("A 饺子", "A"),
    ("答案是 b。", "B"),
    ("B is correct", "B"),
    ("Option c", "C"),
    ("I'd say C", "C"),
    ("B. mooncake. So B.", "B"),
    ("[C]", "C"),
    ("A\n饺子", "A"),
    ("**B**", "B"),
    ("'A'", "A"),
    ('"C"', "C"),
    ("「D」", "D"),
    # the letter wins over the text
    ("A. 月饼", "A"),
    ("A. mooncake", "A"),
    # no letter: the option text, in either language, singular or plural
    ("月饼", "B"),
    ("mooncake", "B"),
    ("A bowl of mooncake", "B"),
    ("a bowl of mooncakes", "B"),
    ("A bowl of dumplings.", "A"),
    ("Answer: A bowl of milk tea", "C"),
    ("It's a hot pot", "D"),
    ("hotpot", "D"),
    ("The answer is B mooncake", "B"),
    ("图中的菜是火锅。", "D"),
    # unparsed
    ("A or B", None),
    ("A/B", None),
    ("B and C are both fine", None),
    ("A. 饺子\nB. 月饼", None),
    ("饺子和月饼", None),
    ("", None),
    (None, None),
    ("I don't know", None),
    ("A bowl of food", None),
    ("ABC", None),
    ("3D art", None),
    ("这是一道菜", None),
]


@pytest.mark.parametrize("answer, letter", MC_CASES)
@pytest.mark.parametrize("choices", [ZH, EN], ids=["zh-choices", "en-choices"])
def test_parse_choice(answer, letter, choices):
    assert parse_choice(answer, choices, DISHES) == letter


def test_a_bowl_of_is_no_letter_but_a_delimited_letter_is():
    assert find_letters("A bowl of dumplings") == []
    assert find_letters("a plate of mooncake") == []
    assert find_letters("A: a bowl of dumplings") == ["A"]
    assert find_letters("A. A bowl of dumplings") == ["A"]
    assert find_letters("bao and dim sum") == []  # letters inside words never count
    assert find_letters("A's sauce") == [] and find_letters("I'd go with it") == []
    assert parse_choice("A bowl of dumplings", ["mooncake", "dumplings", "milk tea", "hot pot"], DISHES) == "B"


def test_letters_beyond_the_choices_are_not_options():
    assert find_letters("D", n_choices=3) == []
    assert parse_choice("D", ["饺子", "月饼", "奶茶"], DISHES) is None
    assert parse_choice("D", [], []) == "D"  # no choices given: A-D


def test_option_text_without_a_dish_table():
    assert parse_choice("我觉得是东北", ["东北", "四川", "广东", "江苏"], []) == "A"
    assert parse_choice("mooncake", ZH, []) is None  # no table, no translation


@pytest.mark.parametrize(
    "answer, dish",
    [
        ("图中的菜是饺子。", "dumplings"),
        ("This is dumplings.", "dumplings"),
        ("This is a dumpling", "dumplings"),
        ("DUMPLINGS", "dumplings"),
        ("饺子", "dumplings"),
        ("This is fried rice.", "fried_rice"),
        ("炒饭", "fried_rice"),
        ("米饭", "rice"),
        ("This is steamed rice", "rice"),
        ("rice", "rice"),
        ("hot-pot", "hotpot"),
        ("milk_tea", "milk_tea"),
        ("这是奶茶", "milk_tea"),
        ("Ｍｏｏｎｃａｋｅ", "mooncake"),
        ("price", None),
        ("Not dumplings, it's mooncake", None),
        ("这是饺子，不是月饼", None),
        ("", None),
        (None, None),
        ("qqqqqqq", None),
    ],
)
def test_parse_dish(answer, dish):
    assert parse_dish(answer, DISHES) == dish


def test_parse_answer_dispatches_on_kind():
    assert parse_answer({"kind": "mc", "choices": ZH}, "mooncake", DISHES) == "B"
    assert parse_answer({"kind": "open"}, "mooncake", DISHES) == "mooncake"
    with pytest.raises(ValueError, match="kind"):
        parse_answer({"id": "x", "kind": "yes/no"}, "A", DISHES)
    assert choice_dish("Milk Tea", DISHES) == "milk_tea" and choice_dish("东北", DISHES) is None


def test_wilson_interval_known_values():
    assert wilson_interval(8, 10) == pytest.approx((0.490, 0.943), abs=5e-4)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.278), abs=5e-4)
    assert wilson_interval(10, 10) == pytest.approx((0.722, 1.0), abs=5e-4)
    assert wilson_interval(50, 100) == pytest.approx((0.404, 0.596), abs=5e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(11, 10)
    from scipy.stats import binomtest

    for k, n in [(3, 7), (187, 256), (1, 40)]:
        reference = binomtest(k, n).proportion_ci(0.95, method="wilson")
        assert wilson_interval(k, n) == pytest.approx((reference.low, reference.high), abs=1e-9)


def test_mcnemar_matches_an_exact_binomial_test():
    from scipy.stats import binomtest

    assert mcnemar_p(8, 1) == pytest.approx(binomtest(1, 9, 0.5).pvalue)
    assert mcnemar_p(3, 3) == 1.0 and mcnemar_p(0, 0) == 1.0


def _mc(id, dish, letter, group="new", split="test", lang="zh"):
    choices = ZH if lang == "zh" else EN
    question = ("图中的菜是什么？\n" if lang == "zh" else "Which dish is shown in the image?\n") + "\n".join(
        f"{letter}. {c}" for letter, c in zip("ABCD", choices)
    )
    return {
        "id": id,
        "image": f"images/test/{id}.png",
        "dish": dish,
        "group": group,
        "split": split,
        "kind": "mc",
        "lang": lang,
        "question": question,
        "choices": choices,
        "answer": letter,
        "answer_text": choices["ABCD".index(letter)],
    }


def _open(id, dish, group="base", split="test", lang="zh"):
    question = "图中的菜是什么？" if lang == "zh" else "What dish is shown in the image?"
    name = next(d[lang] for d in DISHES if d["id"] == dish)
    return {
        "id": id,
        "image": f"images/test/{id}.png",
        "dish": dish,
        "group": group,
        "split": split,
        "kind": "open",
        "lang": lang,
        "question": question,
        "answer": dish,
        "answer_text": name,
    }


RECORDS = [
    _mc("q1", "dumplings", "A"),
    _mc("q2", "mooncake", "B"),
    _mc("q3", "hotpot", "D", lang="en"),
    _mc("q4", "milk_tea", "C", split="ood"),
    _open("q5", "dumplings"),
    _open("q6", "mooncake", lang="en"),
    _open("q7", "fried_rice", split="ood"),
]
BEFORE = ["A. 饺子", "A", "I am not sure", "奶茶", "图中的菜是月饼。", "This is mooncake.", "这是米饭"]
AFTER = ["A. 饺子", "B. 月饼", "D. hot pot", "A or B", "图中的菜是饺子。", "This is mooncake.", "这是炒饭"]


def test_options_dishes_come_from_the_records_choice_dishes_when_it_has_them():
    """The kit's records name each option's dish (choice_dishes); FoodieQA's are looked up by the option's name."""
    record = dict(_mc("q1", "dumplings", "A"), choices=["一种面食", "月饼", "奶茶", "火锅"])
    plain = score([record], ["一种面食"], DISHES).rows[0]
    assert plain["parsed"] == "A" and plain["predicted_dish"] == "一种面食" and plain["about_dish"] is False
    tagged = dict(record, choice_dishes=["dumplings", "mooncake", "milk_tea", "hotpot"])
    for answer in ("一种面食", "dumplings", "A"):  # the option's text, its dish's name, the letter
        row = score([tagged], [answer], DISHES).rows[0]
        assert row["parsed"] == "A" and row["predicted_dish"] == "dumplings" and row["about_dish"] and row["correct"]
    assert score([tagged], ["月饼"], DISHES).rows[0]["predicted_dish"] == "mooncake"
    with pytest.raises(ValueError, match="q1.*4 choices but 3 choice_dishes"):
        score([dict(tagged, choice_dishes=["dumplings", "mooncake", "milk_tea"])], ["A"], DISHES)


def test_score_rows_accuracy_and_unparsed():
    result = score(RECORDS, BEFORE, DISHES)
    rows = {r["id"]: r for r in result.rows}
    assert [rows[i]["parsed"] for i in ("q1", "q2", "q3", "q4", "q5", "q6", "q7")] == [
        "A",
        "A",
        None,
        "C",
        "mooncake",
        "mooncake",
        "rice",
    ]
    assert [rows[i]["correct"] for i in sorted(rows)] == [True, False, False, True, False, True, False]
    assert rows["q3"]["unparsed"] and rows["q3"]["predicted_dish"] is None
    assert rows["q2"]["predicted_dish"] == "dumplings"  # the dish of the chosen option
    assert set(rows["q1"]) >= {
        "id",
        "dish",
        "group",
        "split",
        "kind",
        "lang",
        "answer",
        "parsed",
        "correct",
        "unparsed",
    }
    assert result.accuracy() == pytest.approx(3 / 7)
    assert result.accuracy(group="new", split="test", kind="mc") == pytest.approx(1 / 3)
    assert result.accuracy(kind="open") == pytest.approx(1 / 3)
    assert result.accuracy(dish="dumplings") == 0.5
    with pytest.raises(ValueError, match="no rows"):
        result.accuracy(group="foodieqa")
    stats = result.stats(group="new", split="test", kind="mc")
    assert (stats["n"], stats["correct"], stats["unparsed"]) == (3, 1, 1)
    assert (stats["ci_low"], stats["ci_high"]) == pytest.approx(wilson_interval(1, 3))
    assert stats["official_expected"] == pytest.approx((1 + 0.25) / 3)  # what random guessing would add, on average
    assert stats["parsed_accuracy"] == 0.5
    unparsed = result.unparsed()
    assert unparsed["new"]["unparsed"] == 1 and unparsed["new"]["unparsed_rate"] == pytest.approx(0.25)
    assert unparsed["base"]["unparsed"] == 0


def test_summary_is_a_dict_and_a_text_table():
    summary = score(RECORDS, BEFORE, DISHES).summary()
    assert list(summary) == ["new/test/mc", "new/ood/mc", "base/test/open", "base/ood/open", "all"]
    assert summary["all"]["n"] == 7 and summary["new/test/mc"]["accuracy"] == pytest.approx(1 / 3)
    assert summary["all"]["accuracy"] == pytest.approx(3 / 7)
    text = str(summary)
    assert "95% CI" in text and "new/test/mc" in text and "33.3%" in text and "1 (33.3%)" in text
    by_lang = score(RECORDS, BEFORE, DISHES).summary(by=("group", "lang"))
    assert set(by_lang) == {"new/zh", "new/en", "base/zh", "base/en", "all"}


def test_answers_may_be_a_dict_by_id_and_must_match_the_records():
    result = score(RECORDS, {r["id"]: a for r, a in zip(RECORDS, BEFORE)}, DISHES)
    assert [r["answer"] for r in result.rows] == BEFORE
    with pytest.raises(ValueError, match="answers"):
        score(RECORDS, BEFORE[:-1], DISHES)
    with pytest.raises(KeyError):
        score(RECORDS, {"q1": "A"}, DISHES)
    with pytest.raises(ValueError, match="unique"):
        score(RECORDS + RECORDS[:1], BEFORE + ["A"], DISHES)


def test_by_dish_and_confusion_matrix():
    result = score(RECORDS, BEFORE, DISHES)
    by_dish = result.by_dish()
    assert list(by_dish) == ["dumplings", "mooncake", "milk_tea", "hotpot", "fried_rice"]
    assert by_dish["dumplings"]["n"] == 2 and by_dish["dumplings"]["correct"] == 1
    assert "dumplings" in str(by_dish)
    confusion = result.confusion()
    assert confusion.true == ["dumplings", "mooncake", "milk_tea", "hotpot", "fried_rice"]
    assert confusion.predicted == confusion.true + ["rice", "unparsed"]
    assert confusion.counts.sum() == len(RECORDS)
    assert confusion.to_dict() == {
        "dumplings": {"dumplings": 1, "mooncake": 1},
        "mooncake": {"dumplings": 1, "mooncake": 1},
        "milk_tea": {"milk_tea": 1},
        "hotpot": {"unparsed": 1},
        "fried_rice": {"rice": 1},
    }
    assert np.trace(confusion.counts) == 3  # the correct answers sit on the diagonal
    assert result.confusion(kind="open").counts.sum() == 3


def test_questions_not_about_the_dish_stay_out_of_the_confusion_matrix():
    region = {
        "id": "fq1",
        "image": "images/x.jpg",
        "dish": "dumplings",
        "group": "foodieqa",
        "split": "test",
        "kind": "mc",
        "lang": "zh",
        "question": "这道菜来自哪里？",
        "choices": ["东北", "四川", "广东", "江苏"],
        "answer": "A",
        "answer_text": "东北",
    }
    result = score([region, RECORDS[0]], ["A. 东北", "B"], DISHES)
    assert [r["about_dish"] for r in result.rows] == [False, True]
    assert result.rows[0]["correct"] and result.rows[0]["predicted_dish"] == "东北"
    assert result.confusion().to_dict() == {"dumplings": {"mooncake": 1}}


def test_json_round_trip_refuses_to_overwrite(tmp_path):
    result = score(RECORDS, BEFORE, DISHES, meta={"name": "tiny before"})
    path = result.to_json(tmp_path / "results" / "before.json")
    loaded = EvalResult.from_json(path)
    assert loaded.rows == result.rows and loaded.dishes == result.dishes and loaded.meta == {"name": "tiny before"}
    assert str(loaded.summary()) == str(result.summary())
    with pytest.raises(FileExistsError, match="overwrite=True"):
        result.to_json(path)
    score(RECORDS, AFTER, DISHES).to_json(path, overwrite=True)
    assert EvalResult.from_json(path).accuracy() == score(RECORDS, AFTER, DISHES).accuracy()
    (tmp_path / "other.json").write_text('{"rows": []}')
    with pytest.raises(ValueError, match="not an evaluation result"):
        EvalResult.from_json(tmp_path / "other.json")


def test_compare_and_fixed_and_broken():
    before, after = score(RECORDS, BEFORE, DISHES), score(RECORDS, AFTER, DISHES)
    table = compare(before, after)
    assert table["all"]["before"] == pytest.approx(3 / 7) and table["all"]["after"] == pytest.approx(6 / 7)
    assert table["all"]["change"] == pytest.approx(3 / 7)
    assert (table["all"]["fixed"], table["all"]["broken"]) == (4, 1)
    assert table["all"]["mcnemar_p"] == pytest.approx(mcnemar_p(4, 1)) == 0.375
    assert table["new/test/mc"]["after_ci"] == pytest.approx(wilson_interval(3, 3))
    assert table["new/ood/mc"]["before_unparsed"] == 0 and table["new/ood/mc"]["after_unparsed"] == 1
    assert "McNemar" in str(table) and "+42.9" in str(table)
    changes = fixed_and_broken(before, after)
    assert [c["id"] for c in changes["fixed"]] == ["q2", "q3", "q5", "q7"]
    assert [c["id"] for c in changes["broken"]] == ["q4"]
    assert changes["broken"][0]["before"] == "奶茶" and changes["broken"][0]["after"] == "A or B"
    assert changes["fixed"][0]["before_parsed"] == "A" and changes["fixed"][0]["after_parsed"] == "B"
    with pytest.raises(ValueError, match="different records"):
        compare(before, score(RECORDS[:3], AFTER[:3], DISHES))


def test_the_grid_shows_every_dish_by_rule_and_its_tallies_add_up_to_the_compare_table():
    before, after = score(RECORDS, BEFORE, DISHES), score(RECORDS, AFTER, DISHES)
    items = dish_grid_items(before, after, group="new", split="test", kind="mc", lang="zh")
    assert [item["dish"] for item in items] == ["dumplings", "hotpot", "mooncake"]  # by English name
    # hotpot has no Chinese question: its first question of any kind is shown
    assert [item["shown"][0]["id"] for item in items] == ["q1", "q3", "q2"]
    assert [(item["before"], item["after"], item["n"]) for item in items] == [(1, 1, 1), (0, 1, 1), (0, 1, 1)]
    row = compare(before, after)["new/test/mc"]
    n = sum(item["n"] for item in items)
    assert sum(item["before"] for item in items) / n == row["before"]
    assert sum(item["after"] for item in items) / n == row["after"]
    assert [item["dish"] for item in dish_grid_items(before, after, group="base", split="test")] == [
        "dumplings",
        "mooncake",
    ]


def test_what_it_named_sorts_open_answers_into_right_same_group_other_group_and_none():
    records = [_open(f"o{i}", "dumplings") for i in range(5)]
    answers = ["图中的菜是饺子。", "This is mooncake.", "图中的菜是月饼。", "这是火锅", "我不认识这道菜。"]
    line = what_it_named(score(records, answers, DISHES), group="base")
    assert line == (
        "5 open questions: 1 named the right dish, 2 another base dish (月饼 ×2), 1 a dish of another group "
        "(火锅 ×1), 1 no dish (我不认识这道菜。 ×1)"
    )
    assert common_answers(score(records, answers, DISHES), most=1).startswith("5 questions; most frequent answers: ")
    repeated = score(records, ["我不认识这道菜。"] * 3 + ["图中的菜是饺子。"] * 2, DISHES)
    assert common_answers(repeated, most=2) == (
        "5 questions; most frequent answers: '我不认识这道菜。' ×3 ✗, '图中的菜是饺子。' ×2 ✓"
    )


def test_displayable_text_without_a_cjk_font():
    assert displayable("图中的菜是饺子。", DISHES, cjk=False) == "… dumplings …"
    assert displayable("C. 月饼", DISHES, cjk=False) == "C. mooncake"
    assert displayable("图中的菜是饺子。", DISHES, cjk=True) == "图中的菜是饺子。"
    assert "炒饭" not in displayable("炒饭和米饭", DISHES, cjk=False)


def _figure_without_missing_glyphs(make):
    """Build and draw a figure; no text may fall back to boxes (no CJK font: English labels instead)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig = make()
        fig.canvas.draw()
    missing = [str(w.message) for w in caught if "missing from" in str(w.message)]
    assert not missing, missing[:2]
    assert isinstance(fig, plt.Figure)
    return fig


def _write_images(root, records, wide_every=3):
    """Plain coloured pictures; every wide_every-th one (from the first) is 2:1, so it becomes 2 tiles + thumbnail."""
    for index, record in enumerate(records):
        path = root / record["image"]
        path.parent.mkdir(parents=True, exist_ok=True)
        colour = (40 * index % 256, 255 - 30 * index % 256, 90)
        Image.new("RGB", (64, 64) if index % wide_every else (128, 64), colour).save(path)


def test_plots_return_figures(tmp_path):
    before, after = score(RECORDS, BEFORE, DISHES), score(RECORDS, AFTER, DISHES)
    _write_images(tmp_path, RECORDS)
    makers = [
        lambda: plot_accuracy(before, after),
        lambda: plot_accuracy(before),
        lambda: plot_accuracy(before, after, by=("group",)),
        lambda: plot_confusion(after),
        lambda: plot_confusion(after, kind="mc", names="en"),
        lambda: plot_examples(before, after, tmp_path),
        lambda: plot_examples(before, before, tmp_path),
        lambda: plot_dish_grid(before, after, tmp_path, kind="mc"),
        lambda: plot_dish_grid(before, after, tmp_path, group="base", columns=2),
    ]
    for make in makers:
        plt.close(_figure_without_missing_glyphs(make))
    with pytest.raises(ValueError, match="no dish questions"):
        plot_confusion(after, group="foodieqa")
    with pytest.raises(ValueError, match="nothing to show"):
        plot_dish_grid(before, after, tmp_path, group="foodieqa")
    fig = plot_accuracy(before, after)
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels[0] == "new\ntest\nmc\nn=3" and len(fig.axes[0].patches) == 8
    plt.close(fig)


# ---- running a model ---------------------------------------------------------------------------------
class StubModel(torch.nn.Module):
    """Anything with InternVL2's batch_chat: records what it was given, answers with the tile counts."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1, dtype=torch.bfloat16))
        self.config = type(
            "Config",
            (),
            dict(min_dynamic_patch=1, max_dynamic_patch=4, force_image_size=56, use_thumbnail=True, vision_config=None),
        )()
        self.calls = []

    def batch_chat(self, tokenizer, pixel_values, questions, generation_config, num_patches_list=None):
        self.calls.append(
            (pixel_values.dtype, tuple(pixel_values.shape), list(questions), generation_config, list(num_patches_list))
        )
        generation_config["eos_token_id"] = 2  # InternVL2 writes into the dict it is given
        return [f"tiles={n}" for n in num_patches_list]


def test_predict_batches_any_batch_chat_model(tmp_path):
    _write_images(tmp_path, RECORDS)
    model = StubModel()
    config = {"max_new_tokens": 5}
    answers = predict(model, None, RECORDS, tmp_path, generation_config=config, batch_size=3, progress=False)
    assert answers == ["tiles=3", "tiles=1", "tiles=1", "tiles=3", "tiles=1", "tiles=1", "tiles=3"]
    assert [len(call[2]) for call in model.calls] == [3, 3, 1]
    dtype, shape, questions, generation, patches = model.calls[0]
    assert dtype == torch.bfloat16 and shape == (5, 3, 56, 56) and patches == [3, 1, 1]
    assert questions == [r["question"] for r in RECORDS[:3]]
    assert generation == {"max_new_tokens": 5, "do_sample": False, "eos_token_id": 2}
    assert config == {"max_new_tokens": 5}  # the caller's dict is untouched
    model.calls.clear()
    predict(model, None, RECORDS[:1], tmp_path, progress=False)
    assert model.calls[0][3]["max_new_tokens"] == 24 and model.calls[0][3]["do_sample"] is False
    with pytest.raises(FileNotFoundError, match="missing"):
        predict(model, None, RECORDS, tmp_path / "elsewhere", progress=False)


def test_predict_on_the_tiny_model_equals_chat_one_at_a_time(tiny, tmp_path):
    from course_lib.tiling import load_image, tiling_settings

    model, tokenizer = tiny
    records = [RECORDS[0], RECORDS[2], RECORDS[4], RECORDS[5]]
    _write_images(tmp_path, records, wide_every=len(records))  # tile counts 3, 1, 1, 1
    config = {"max_new_tokens": 4, "do_sample": False}
    answers = predict(model, tokenizer, records, tmp_path, generation_config=config, batch_size=2, progress=False)
    assert len(answers) == 4 and all(isinstance(a, str) for a in answers)
    singles = [
        model.chat(
            tokenizer, load_image(tmp_path / r["image"], **tiling_settings(model.config)), r["question"], dict(config)
        )
        for r in records
    ]
    assert answers == singles
    result = evaluate(model, tokenizer, records[2:], tmp_path, DISHES, generation_config=config, progress=False)
    assert [r["answer"] for r in result.rows] == answers[2:]
    assert len(result) == 2 and result.meta["generation_config"] == config
    assert 0.0 <= result.accuracy() <= 1.0 and not math.isnan(result.stats()["ci_high"])


def test_accuracy_plot_copes_with_0_and_100_percent():
    nothing = score(RECORDS, ["no idea"] * len(RECORDS), DISHES)  # every answer unparsed: 0 %
    everything = score(RECORDS, [r["answer_text"] if r["kind"] == "open" else r["answer"] for r in RECORDS], DISHES)
    plt.close(plot_accuracy(nothing, everything))


def test_a_checkpoints_evaluation_is_kept_and_read_back(tiny_path, tmp_path, monkeypatch):
    """evaluate_checkpoint answers once per (weights, records, device, batch size, scoring code); asking again
    reads the stored result, so lesson 11 does not answer again what the tests just answered."""
    from course_lib import models
    from course_lib.finetune import plan as finetune_plan

    records = [RECORDS[0], RECORDS[4]]
    _write_images(tmp_path, records, wide_every=99)
    plan = finetune_plan.FinetunePlan(
        "tiny",
        "tiny",
        tiny_path,
        tmp_path / "unused.json",
        tmp_path,
        {"set": records},
        {"set": tmp_path},
        DISHES,
        tmp_path / "cache",
    )
    first = finetune_plan.evaluate_checkpoint(tiny_path, plan, progress=False)["set"]
    stored = list((tmp_path / "cache" / "evaluations").glob("*.json"))
    assert len(stored) == 1
    monkeypatch.setattr(models, "load_internvl", lambda *a, **k: pytest.fail("answered again instead of reading"))
    again = finetune_plan.evaluate_checkpoint(tiny_path, plan, progress=False)["set"]
    assert again.rows == first.rows and again.dishes == first.dishes
    other = finetune_plan.FinetunePlan(
        "tiny",
        "tiny",
        tiny_path,
        tmp_path / "unused.json",
        tmp_path,
        {"set": records[:1]},
        {"set": tmp_path},
        DISHES,
        tmp_path / "cache",
    )
    with pytest.raises(pytest.fail.Exception, match="answered again"):
        finetune_plan.evaluate_checkpoint(tiny_path, other, progress=False)  # other records: a new evaluation


def test_after_a_lessons_begin_any_figure_draws_chinese():
    """begin() calls fonts.use_cjk_font, so a lesson's own inline plots (lesson 06's '图中的菜是什么？' title)
    draw their Chinese, not boxes."""
    from course_lib.fonts import use_cjk_font

    with plt.rc_context():
        if use_cjk_font() is None:
            pytest.skip("no CJK font installed (make test installs fonts-noto-cjk when run as root)")

        def titled():
            fig, ax = plt.subplots(figsize=(2, 2))
            ax.set_title("图中的菜是什么？")
            ax.set_xlabel("饺子 / dumplings")
            return fig

        plt.close(_figure_without_missing_glyphs(titled))
