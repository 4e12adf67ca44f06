"""The exercises' checks: an empty answer gets a hint, a wrong one 'Not yet' and a hint, never a traceback; the
solutions are proven right by executing every notebook with them (test_notebooks)."""

import json

import pytest
from conftest import REPO_ROOT

from course_lib.exercises import BEGIN, END, EXERCISES, STRICT_ENV, check, marked_exercises
from course_lib.qformer_masks import itc_mask, itm_mask
from course_lib.solutions import SOLUTIONS

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _exercise_cells(path):
    """(exercise name, the student's part) of each marked cell of a lesson."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    found = []
    for source in ("".join(c["source"]) for c in cells if c["cell_type"] == "code"):
        for name, begin in marked_exercises(source, path.name[:2]):
            found.append((name, source.split(begin, 1)[1].split(END, 1)[0]))
    return found


def test_every_lesson_after_00_has_exercises_with_checks_and_solutions():
    marked = [name for path in NOTEBOOKS for name, _ in _exercise_cells(path)]
    assert len(marked) == len(set(marked)), "an exercise is marked twice"
    assert set(marked) == set(EXERCISES) == set(SOLUTIONS)
    assert {name[:2] for name in marked} == {f"{n:02d}" for n in range(1, 12)}
    for path in NOTEBOOKS:
        for name, student in _exercise_cells(path):
            assert "..." in student, f"{path.name}: exercise {name} must be left for the student"
            for answer in EXERCISES[name].answers:  # nothing of the answer is in the cell
                assert f"{answer} = ..." in student or f"def {answer}(" in student, (path.name, name, answer)


def _context(lesson, tiny, engine=None, food=None, release=None):
    model, _ = tiny
    from course_lib.serving.kv_cache import TurnCost

    costs = [TurnCost(1, 300, 300, 256), TurnCost(2, 330, 20, 256)]
    return {
        "01": dict(model=model, tiles=[None] * 3),
        "02": dict(blip2_count=1),
        "06": dict(engine=engine),
        "02c": dict(hidden_size=model.language_model.config.hidden_size),
        "06b": dict(costs=costs),
        "09": dict(food or {}),
        "10": dict(records=56, batch_size=4, total_iters=42),
        "04b": dict(model=model),
        "06c": dict(model_path=engine.model_path if engine else None),
        "09b": dict(release=release),
        "10c": dict(model=model),
    }.get(lesson, {})


def _no_permute(x):  # the right shape, without the permute: every token holds the wrong patches
    n, h, w, c = x.shape
    return x.reshape(n, h // 2, w // 2, 4 * c)


def _no_tie_break(width, height, grids, image_size=448):  # the first closest grid, whatever the picture's size
    return min(grids, key=lambda grid: abs(width / height - grid[0] / grid[1]))


def _right_padded(token_lists, pad_id):  # pads after the prompt: the answer would follow the pads
    import torch

    longest = max(len(ids) for ids in token_lists)
    ids = [list(x) + [pad_id] * (longest - len(x)) for x in token_lists]
    return torch.tensor(ids), torch.tensor([[1] * len(x) + [0] * (longest - len(x)) for x in token_lists])


def _wald(correct, n):  # the textbook interval, not Wilson's
    p, half = correct / n, 1.96 * (correct / n * (1 - correct / n) / n) ** 0.5
    return p - half, p + half


def _one_sided(fixed, broken):
    import math

    n = fixed + broken
    return sum(math.comb(n, k) for k in range(min(fixed, broken) + 1)) / 2**n


def _causal_itg(q, t):  # causal over the whole sequence: the first queries cannot see the later ones
    import torch

    return torch.ones(q + t, q + t, dtype=torch.bool).tril()


WRONG = {
    "01": dict(tokens_per_tile=1024, tokens_without_shuffle=1024),
    "02": dict(llava15_13b=1, my_replace=lambda *a: None),
    "03": dict(my_itg_mask=[[1] * 7] * 7),
    "04": dict(tokens_at_quarter=256, patches_in_token_1_0=[4, 5, 6, 7]),
    "05": dict(banner_tiles=10),
    "06": dict(context_tokens=512),
    "07": dict(sessions=1),
    "08": dict(last_wait_seconds=2),
    "09": dict(answer="A"),
    "10": dict(your_answer=14),
    "11": dict(your_answer=0.94),
    "01b": dict(patches_at_224=1024),
    "02b": dict(new_token_cost=92_553 * 2048),
    "10b": dict(zero3_four_gpus=35.2),
    "02c": dict(llava_stage2_trained={"connector"}, det_decoder_input=(8, 16)),
    "06b": dict(tokens_saved=630),
    "11b": dict(your_precision=0.9, your_f1=0.75),
    "03b": dict(my_itc=itc_mask, my_itm=itm_mask, my_itg=_causal_itg),
    "04b": dict(my_pixel_shuffle=_no_permute),
    "05b": dict(my_grid=_no_tie_break),
    "06c": dict(my_left_pad=_right_padded),
    "07b": dict(
        my_messages=lambda question, png, tiles: [
            {"role": "user", "content": [{"type": "text", "text": question}, image_part(png, tiles)]}
        ]
    ),
    "09b": dict(
        my_xtuner_record=lambda item, image: {
            "image": image,
            "conversations": [
                {"from": "human", "value": "<image>\n" + item["question"]},
                {"from": "gpt", "value": item["choices"][int(item["answer"])]},
            ],
        }
    ),
    "11c": dict(my_wilson=_wald, my_mcnemar=_one_sided),
    "10c": dict(my_lora_forward=lambda x, w, b, a, bb, alpha, r: x @ (w + bb @ a).T + (0 if b is None else b)),
}


@pytest.fixture(scope="module")
def engine(tiny, tiny_path):
    from course_lib.serving.transformers_backend import TransformersEngine

    return TransformersEngine(*tiny, model_path=tiny_path)


@pytest.fixture(scope="module")
def food():
    from course_lib.config import cache_dir
    from course_lib.finetune.plan import linked_food_set

    data = linked_food_set(cache_dir(), log=lambda *_: None)
    return dict(
        dishes=json.loads((data / "dishes.json").read_text(encoding="utf-8")),
        test=json.loads((data / "eval" / "test.json").read_text(encoding="utf-8")),
    )


def image_part(png, tiles):
    import base64

    url = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    return {"type": "image_url", "image_url": {"url": url, "max_dynamic_patch": tiles}}


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    from course_lib.foodieqa import write_fake_release

    return write_fake_release(tmp_path_factory.mktemp("foodieqa") / "FAKE-foodieqa")


@pytest.mark.parametrize("lesson", sorted(WRONG))
def test_a_wrong_answer_does_not_pass_and_says_why(lesson, tiny, engine, food, release, capsys, monkeypatch):
    monkeypatch.delenv(STRICT_ENV, raising=False)
    context = _context(lesson, tiny, engine, food, release)
    assert check(lesson, **WRONG[lesson], **context).right is False
    said = capsys.readouterr().out
    assert said.startswith("Not yet: ") and "Traceback" not in said, said
    monkeypatch.setenv(STRICT_ENV, "1")  # the solutions run: a check that does not pass fails the notebook
    with pytest.raises(AssertionError, match=f"lesson {lesson}'s exercise: Not yet"):
        check(lesson, **WRONG[lesson], **context)


@pytest.mark.parametrize("lesson", sorted(WRONG))
def test_an_empty_answer_gets_the_hint(lesson, tiny, engine, food, release, capsys, monkeypatch):
    monkeypatch.delenv(STRICT_ENV, raising=False)
    empty = {name: ... for name in EXERCISES[lesson].answers}
    assert check(lesson, **empty, **_context(lesson, tiny, engine, food, release)).right is False
    assert capsys.readouterr().out == (
        f"Fill in {', '.join(EXERCISES[lesson].answers)} (still `...`), then run the "
        f"cell again. Hint: {EXERCISES[lesson].hint}\n"
    )


def test_an_answer_that_raises_is_reported_not_thrown(capsys, monkeypatch):
    monkeypatch.delenv(STRICT_ENV, raising=False)

    def broken(*args):
        raise IndexError("index 9 is out of bounds")

    assert (
        check("02", llava15_13b=1024 * 5120 + 5120 + 5120 * 5120 + 5120, my_replace=broken, blip2_count=1).right
        is False
    )
    assert capsys.readouterr().out.startswith("Not yet: your answer raised IndexError: index 9 is out of bounds. Hint:")


def test_the_solutions_fill_the_markers_only():
    import nbformat

    from course_lib.notebooks import with_solutions

    path = REPO_ROOT / "notebooks" / "05_dynamic_tiling.ipynb"
    filled = with_solutions(nbformat.read(path, as_version=4), "05")
    cells = [c.source for c in filled.cells if c.cell_type == "code" and BEGIN in c.source]
    assert len(cells) == 1 and f"{BEGIN}\n{SOLUTIONS['05']}{END}" in cells[0]
    assert cells[0].endswith('check("05", banner_tiles=banner_tiles)')


def test_a_right_answer_is_said_to_be_right(capsys, monkeypatch):
    monkeypatch.delenv(STRICT_ENV, raising=False)
    verdict = check("05", banner_tiles=11)
    assert verdict and verdict.right
    assert capsys.readouterr().out.startswith("Right: grid 10x1 + thumbnail = 11 tiles")


BUILD_IT_SAYS = {  # the wrong answer above gets the hint written for that mistake, not a generic one
    "03b": "my_itg(3, 4) differs in the rows of q1, q2",
    "04b": "token (0, 0) should hold patches [0, 1, 4, 5]",
    "05b": "On a tie InternVL takes the later grid",
    "06c": "that is right padding",
    "07b": "the image goes first",
    "09b": "the kit's own layout",
    "10c": "yours is not scaled",
    "11c": "the textbook p ± z·sqrt(p(1-p)/n)",
}


@pytest.mark.parametrize("lesson", sorted(BUILD_IT_SAYS))
def test_a_build_it_mistake_gets_its_own_hint(lesson, tiny, engine, food, release, capsys, monkeypatch):
    monkeypatch.delenv(STRICT_ENV, raising=False)
    check(lesson, **WRONG[lesson], **_context(lesson, tiny, engine, food, release))
    said = capsys.readouterr().out
    assert BUILD_IT_SAYS[lesson] in said and "raised" not in said, said


@pytest.mark.parametrize("lesson", sorted(BUILD_IT_SAYS))
def test_a_build_it_solution_passes_its_check(lesson, tiny, engine, food, release, capsys, monkeypatch):
    """The fast loop's proof (test_notebooks proves it again inside each lesson)."""
    import base64
    import math

    import torch

    monkeypatch.setenv(STRICT_ENV, "1")
    namespace = {"torch": torch, "math": math, "base64": base64}
    exec(SOLUTIONS[lesson], namespace)
    answers = {name: namespace[name] for name in EXERCISES[lesson].answers}
    assert check(lesson, **answers, **_context(lesson, tiny, engine, food, release))
    assert capsys.readouterr().out.startswith("Right: ")


def test_a_function_left_as_dots_is_asked_for_not_called(capsys, monkeypatch):
    monkeypatch.delenv(STRICT_ENV, raising=False)

    def my_grid(width, height, grids, image_size=448):
        """The closest grid."""
        ...  # the student's part, not written yet

    assert check("05b", my_grid=my_grid).right is False
    assert capsys.readouterr().out.startswith("Fill in my_grid (still `...`)")

    def my_grid(width, height, grids, image_size=448):
        return (1, 1)

    assert check("05b", my_grid=my_grid).right is False
    assert capsys.readouterr().out.startswith("Not yet: ")


def test_the_checks_speak_the_lessons_language(capsys, monkeypatch):
    """In the Chinese edition (COURSE_LANG=zh) the frame, the hints and the explanations are Chinese; lesson 07's
    explanation, written out in exercises.py so it can be translated, stays estimate.summary() in English."""
    from course_lib.serving.kv_cache import cache_memory_estimate

    monkeypatch.delenv(STRICT_ENV, raising=False)
    monkeypatch.setenv("COURSE_LANG", "zh")
    wrong = check("05", banner_tiles=10)
    assert not wrong and wrong.message.startswith("还不对：") and "缩略图" in wrong.message, wrong.message
    empty = check("11", your_answer=...)
    assert not empty and empty.message.startswith("先把 your_answer 填好"), empty.message
    assert "提示：Wilson 区间" in empty.message, empty.message
    count = 1024 * 5120 + 5120 + 5120 * 5120 + 5120
    raised = check("02", llava15_13b=count, my_replace=lambda *a: 1 / 0, blip2_count=1)
    assert raised.message.startswith("还不对：你的答案运行时抛出了 ZeroDivisionError") and "提示：" in raised.message
    right = check("05", banner_tiles=11)
    assert right and right.message.startswith("答对了：网格 10x1 + 缩略图 = 11 个切片"), right.message
    assert capsys.readouterr().out == "".join(v.message + "\n" for v in (wrong, empty, raised, right))

    estimate = cache_memory_estimate(24, cache_max_entry_count=0.5, quant_policy=8)
    assert check("07", sessions=estimate.sessions).message.startswith("答对了：24 GiB 显存")
    monkeypatch.setenv("COURSE_LANG", "en")
    assert check("07", sessions=estimate.sessions).message == "Right: " + estimate.summary()
