"""The lessons' exercises: the student writes the answer, `check` says right or not yet, with a hint.

An exercise cell keeps the student's part between two marker lines, then asks for a check:

    # ---- your answer ----
    banner_tiles = ...  # TODO
    # ---- end of your answer ----
    check("05", banner_tiles=banner_tiles)

`check` never raises for the student: an answer left as `...` gets "Fill in ...", a wrong one (or one that
raises) gets "Not yet" and the hint. The model answers live in `course_lib/solutions.py`.
`course_lib.notebooks.execute_notebook(path, solutions=True)` puts them between the markers and sets
COURSE_EXERCISES_STRICT=1, so a check that is not passed fails the run. That is how CI proves each solution
still passes its check, and tests/test_exercises.py proves that wrong answers do not pass.
"""

import os
import re
from dataclasses import dataclass
from typing import Callable, Dict, Tuple

from .internvl_format import IMG_CONTEXT_TOKEN

BEGIN = (
    "# ---- your answer ----"  # the lesson's main exercise; a further one names itself: "# ---- your answer (02b) ----"
)
END = "# ---- end of your answer ----"
MARKER = re.compile(r"^# ---- your answer(?: \((?P<name>\d\d[a-z])\))? ----$", re.MULTILINE)
STRICT_ENV = "COURSE_EXERCISES_STRICT"


def marked_exercises(source: str, lesson: str):
    """(exercise name, its begin-marker line) for each exercise marked in a cell's source; the plain marker is
    the lesson's own exercise (named like the lesson: "05")."""
    return [(found.group("name") or lesson, found.group(0)) for found in MARKER.finditer(source)]


class Wrong(Exception):
    """The answer is not right; the message is the hint."""


@dataclass(frozen=True)
class Exercise:
    answers: Tuple[str, ...]  # the names the student fills in
    hint: str  # shown while an answer is still `...`
    judge: Callable[..., str]  # raises Wrong(hint) or returns the "Right: ..." explanation


EXERCISES: Dict[str, Exercise] = {}


def exercise(lesson: str, *answers: str, hint: str):
    def register(judge):
        EXERCISES[lesson] = Exercise(answers, hint, judge)
        return judge

    return register


@dataclass(frozen=True)
class Verdict:
    """check's result: true when right. Its message is printed already, so a notebook shows nothing more."""

    right: bool
    message: str

    def __bool__(self) -> bool:
        return self.right

    def _ipython_display_(self) -> None:
        pass


def check(lesson: str, **given) -> Verdict:
    """Judge a lesson's exercise: prints "Right: ..." or a hint and returns the verdict (true when right). With
    COURSE_EXERCISES_STRICT=1 (the solutions run), an answer that is not right raises AssertionError."""
    if lesson not in EXERCISES:
        raise KeyError(f"lesson {lesson!r} has no exercise; known: {sorted(EXERCISES)}")
    task = EXERCISES[lesson]
    missing = [name for name in task.answers if given.get(name, ...) is ...]
    if missing:
        right, message = (
            False,
            f"Fill in {', '.join(missing)} (still `...`), then run the cell again. Hint: {task.hint}",
        )
    else:
        try:
            right, message = True, "Right: " + task.judge(**given)
        except Wrong as hint:
            right, message = False, f"Not yet: {hint}"
        except Exception as error:  # the student's own code raised: say so, without a traceback
            right, message = False, f"Not yet: your answer raised {type(error).__name__}: {error}. Hint: {task.hint}"
    if not right and os.environ.get(STRICT_ENV) == "1":
        raise AssertionError(f"lesson {lesson}'s exercise: {message}")
    print(message)
    return Verdict(right, message)


def _expect(condition: bool, hint: str) -> None:
    if not condition:
        raise Wrong(hint)


# ---- the exercises, lesson by lesson -------------------------------------------------------------
@exercise(
    "01",
    "tokens_per_tile",
    "tokens_without_shuffle",
    hint="a 448x448 tile is cut into 14x14 patches; pixel shuffle folds each 2x2 block into one token",
)
def _lesson_01(tokens_per_tile, tokens_without_shuffle, model, tiles):
    _expect(tokens_per_tile == model.num_image_token, "448/14 = 32 patches a side; pixel shuffle keeps 1 in 4")
    _expect(tokens_without_shuffle == (448 // 14) ** 2 * len(tiles), "32 x 32 patches per tile, for every tile")
    return f"pixel shuffle saves {tokens_without_shuffle - tokens_per_tile * len(tiles)} tokens here."


@exercise(
    "02",
    "llava15_13b",
    "my_replace",
    hint="Linear(i, o) has i*o weights and o biases; torch.where(input_ids == placeholder_id) finds the rows",
)
def _lesson_02(llava15_13b, my_replace, blip2_count):
    import torch

    from . import connectors as C

    expected = C.meta_count(C.llava15_projector, 1024, 5120)
    _expect(llava15_13b == expected, "each Linear(i, o) has i*o weights and o biases, and the MLP has two of them")
    placeholder = 0
    ids, text, images = (
        torch.tensor([[1, placeholder, placeholder, 2, placeholder, placeholder]]),
        torch.randn(1, 6, 3),
        torch.randn(2, 2, 3),
    )
    mine = my_replace(ids, text, images, placeholder)
    _expect(
        isinstance(mine, torch.Tensor) and torch.equal(mine, C.replace_placeholders(ids, text, images, placeholder)),
        "the image rows must land on the placeholders, in order, and the other rows stay the text's",
    )
    return (
        f"{llava15_13b:,} parameters, under a third of BLIP-2's Q-Former connector ({blip2_count:,}); "
        "and your torch.where replacement matches course_lib."
    )


@exercise("03", "my_itg_mask", hint="queries see only queries; text token t sees every query and the tokens up to t")
def _lesson_03(my_itg_mask):
    from .qformer_masks import itg_mask

    expected = itg_mask(3, 4).int().tolist()
    names = ["q1", "q2", "q3", "t1", "t2", "t3", "t4"]
    _expect(
        len(my_itg_mask) == 7 and all(len(row) == 7 for row in my_itg_mask), "the mask is 7 x 7: 3 queries + 4 tokens"
    )
    wrong = [names[i] for i, (mine, right) in enumerate(zip(my_itg_mask, expected)) if list(mine) != right]
    _expect(
        not wrong,
        f"the rows of {', '.join(wrong)} differ. Queries see only queries; text token t sees every "
        "query and the tokens up to and including itself.",
    )
    return "text sees the image summary and its own past; the queries never see the text."


@exercise(
    "04",
    "tokens_at_quarter",
    "patches_in_token_1_0",
    hint="at scale 0.25 each 4x4 block of patches becomes one token; on a 4x4 grid, token (1, 0) is one 2x2 block",
)
def _lesson_04(tokens_at_quarter, patches_in_token_1_0):
    import torch

    from .pixel_shuffle import pixel_shuffle, token_arithmetic

    _expect(tokens_at_quarter == token_arithmetic(448, 14, 0.25)["tokens per tile"], "32x32 patches, 4x4 blocks")
    folded = pixel_shuffle(torch.arange(16.0).reshape(1, 4, 4, 1))[0, 1, 0].long().tolist()
    _expect(
        list(patches_in_token_1_0) == folded, "number the 4x4 patches 0-15 row by row; which 2x2 block is token (1, 0)?"
    )
    return f"{tokens_at_quarter} tokens a tile at 0.25; token (1, 0) holds patches {folded}."


@exercise("05", "banner_tiles", hint="a 10:1 picture within 12 tiles: which grid, and is a thumbnail added?")
def _lesson_05(banner_tiles):
    from .tiling import plan_tiles

    plan = plan_tiles(1000, 100, max_num=12)
    _expect(banner_tiles == plan.tiles, f"aspect 10:1 gives the grid {plan.grid}; do not forget the thumbnail")
    return f"grid {plan.grid[0]}x{plan.grid[1]} + thumbnail = {plan.tiles} tiles, {plan.image_tokens} tokens."


@exercise("06", "context_tokens", hint="3:1 within 2 tiles: which grid, plus the thumbnail, times 256")
def _lesson_06(context_tokens, engine):
    from .food_artwork import side_by_side

    wide = side_by_side(["dumplings", "ramen noodles", "mooncake"])
    counted = engine.prompt_text("这几道菜是什么？", wide, max_tiles=2).count(IMG_CONTEXT_TOKEN)
    _expect(context_tokens == counted, "3:1 within 2 tiles is a 2x1 grid, plus the thumbnail, x 256")
    return f"{counted} image tokens = {counted // 256} tiles x 256."


@exercise(
    "07", "sessions", hint="free = 24 GB - weights; cache = free x 0.5; int8 KV per token; sessions = tokens // 8192"
)
def _lesson_07(sessions):
    from .serving.kv_cache import cache_memory_estimate

    estimate = cache_memory_estimate(24, cache_max_entry_count=0.5, quant_policy=8)
    _expect(
        sessions == estimate.sessions,
        "free = 24 - 2.2e9 x 2 B; cache = free x 0.5; int8 KV = 48 KiB per token; sessions = tokens // 8192",
    )
    return estimate.summary()


@exercise("08", "last_wait_seconds", hint="the queue admits all four; does the engine answer them together?")
def _lesson_08(last_wait_seconds):
    from .serving.gradio_app import CONCURRENCY

    users, seconds_each = 4, 2
    _expect(
        users <= CONCURRENCY and last_wait_seconds == users * seconds_each,
        "admitted together, but the engine's lock serves them one by one",
    )
    return f"{last_wait_seconds} s. LMDeploy would batch the four and answer all in little more than 2 s."


@exercise("09", "answer", hint='"A", "B", "C" or "D": imagine a model that knows only the 12 base dishes')
def _lesson_09(answer, dishes, test):
    _expect(answer == "B", "imagine a model that knows only the 12 base dishes: what can it do with 3 known options?")
    base_names = {d[lang] for d in dishes if d["group"] == "base" for lang in ("zh", "en")}
    mc_new = [r for r in test if r["group"] == "new" and r["kind"] == "mc"]
    left = {len([c for c in r["choices"] if c not in base_names]) for r in mc_new}
    return (
        f"ruling out the base dishes leaves {' or '.join(map(str, sorted(left)))} unknown options in each of the "
        f"{len(mc_new)} new-dish questions, so a model that never saw the new dishes scores chance (25 %). With "
        "base-dish distractors it would leave one option, the right answer, every time: 100 % without recognising "
        "anything."
    )


@exercise(
    "10", "your_answer", hint="one iteration per batch of BATCH_SIZE records (the last batch may be short), every epoch"
)
def _lesson_10(your_answer, records, batch_size, total_iters):
    _expect(your_answer == total_iters, "iterations per epoch (ceil(records / batch size)) times epochs")
    return f"{records} records, batch {batch_size} -> {your_answer} iterations."


@exercise("11", "your_answer", hint="Wilson: (p + z²/2n - z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n), with z = 1.96")
def _lesson_11(your_answer):
    from .evaluation import wilson_interval

    low, high = wilson_interval(90, 96)
    _expect(abs(your_answer - low) < 0.01, "compute the Wilson interval for 90 of 96 and take its lower end")
    return f"90/96 = {90 / 96:.1%}, 95% interval {low:.1%} to {high:.1%}."


# ---- further exercises, for the lecture sections added later ----------------------------------------
@exercise("01b", "patches_at_224", hint="a picture of side s cut into 14-pixel patches has (s / 14)² of them")
def _lesson_01b(patches_at_224):
    _expect(patches_at_224 == (224 // 14) ** 2, "224 / 14 = 16 patches a side")
    return f"{patches_at_224} patches at 224 px; going to 448 px gave InternViT four times as many, 1024."


@exercise("02b", "new_token_cost", hint="the input embedding and lm_head are each vocabulary x width, and both train")
def _lesson_02b(new_token_cost):
    from . import internvl2_2b
    from .connectors import special_token_training_cost

    expected = special_token_training_cost(internvl2_2b.LLM["vocab_size"], internvl2_2b.LLM["hidden"])
    _expect(new_token_cost == expected, "two matrices (embedding and lm_head, not tied), each 92,553 x 2048")
    return f"{new_token_cost:,} parameters, about {new_token_cost / 2.2e9:.0%} of the whole model, for two new tokens."


@exercise(
    "10b",
    "zero3_four_gpus",
    hint="ZeRO-3 divides weights, gradients and Adam's state, 16 bytes a parameter, by the GPUs",
)
def _lesson_10b(zero3_four_gpus):
    from . import internvl2_2b
    from .finetune.memory import zero_memory

    expected = zero_memory(internvl2_2b.PARAMETERS, internvl2_2b.PARAMETERS, gpus=4, stage=3)["total"]
    _expect(abs(zero3_four_gpus - expected) < 0.1, "16 bytes x 2.2 B parameters, divided over 4 GPUs, in GB")
    return f"{expected:.1f} GB per GPU before activations, against 35.2 GB on one GPU without ZeRO."


@exercise(
    "02c",
    "llava_stage2_trained",
    "det_decoder_input",
    hint="read LLaVA-1.5's second row of the training-stage grid; a decoder gets one hidden state per query",
)
def _lesson_02c(llava_stage2_trained, det_decoder_input, hidden_size):
    from .diagrams import PARTS, TRAINING_STAGES

    stage = next(s for s in TRAINING_STAGES if s.model == "LLaVA-1.5" and s.stage.startswith("2"))
    trained = {part for part, state in zip(PARTS, stage.parts) if state != "frozen"}
    _expect(
        set(llava_stage2_trained) == trained, "in its second stage LLaVA-1.5 keeps CLIP frozen: which two parts change?"
    )
    _expect(
        tuple(det_decoder_input) == (8, hidden_size),
        "8 [DET] queries, each leaves the language model as one hidden state of the model's width",
    )
    return (
        f"{' and '.join(sorted(trained))} train; the detector reads {det_decoder_input[0]} vectors of width "
        f"{det_decoder_input[1]}, whatever the request's length."
    )


@exercise(
    "06b",
    "tokens_saved",
    hint="add up what each turn reads with the whole conversation sent again, and "
    "with the kept cache; the difference is saved",
)
def _lesson_06b(tokens_saved, costs):
    expected = sum(c.prompt_tokens for c in costs) - sum(c.new_tokens for c in costs)
    _expect(tokens_saved == expected, "sum prompt_tokens over the turns, minus the sum of new_tokens")
    share = expected / sum(c.prompt_tokens for c in costs)
    return f"{expected} tokens ({share:.0%} of the reading) are not read again over {len(costs)} turns."


@exercise(
    "11b",
    "your_precision",
    "your_f1",
    hint="precision: right yes / all yes; recall: right yes / questions whose answer is yes; F1 = 2PR / (P + R)",
)
def _lesson_11b(your_precision, your_f1):
    from .probe_scores import pope

    rows = (
        [{"kind": "yesno", "expected": "yes", "parsed": "yes", "correct": True, "unparsed": False}] * 45
        + [{"kind": "yesno", "expected": "yes", "parsed": "no", "correct": False, "unparsed": False}] * 5
        + [{"kind": "yesno", "expected": "no", "parsed": "yes", "correct": False, "unparsed": False}] * 25
        + [{"kind": "yesno", "expected": "no", "parsed": "no", "correct": True, "unparsed": False}] * 25
    )
    figures = pope(rows)
    _expect(abs(your_precision - figures["precision"]) < 0.01, "45 of its 70 yes answers were right")
    _expect(abs(your_f1 - figures["f1"]) < 0.01, "recall is 45 of the 50 questions whose answer is yes")
    return (
        f"precision {figures['precision']:.2f}, recall {figures['recall']:.2f}, F1 {figures['f1']:.2f}, accuracy "
        f"{figures['accuracy']:.0%}: it said yes {figures['yes_ratio']:.0%} of the time, POPE's sign of a model that "
        "hallucinates."
    )
