"""The lessons' exercises: the student writes the answer, `check` says right or not yet, with a hint.

An exercise cell keeps the student's part between two marker lines, then asks for a check:

    # ---- your answer ----
    banner_tiles = ...  # TODO
    # ---- end of your answer ----
    check("05", banner_tiles=banner_tiles)

`check` never raises for the student: an answer left as `...` (a value, or a function whose body is still `...`)
gets "Fill in ...", a wrong one (or one that raises) gets "Not yet" and the hint. The model answers live in
`course_lib/solutions.py`.
`course_lib.notebooks.execute_notebook(path, solutions=True)` puts them between the markers and sets
COURSE_EXERCISES_STRICT=1, so a check that is not passed fails the run. That is how CI proves each solution
still passes its check, and tests/test_exercises.py proves that wrong answers do not pass.
"""

import ast
import inspect
import os
import re
import textwrap
from dataclasses import dataclass
from typing import Callable, Dict, Tuple

from .i18n import later, tr
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
    hint: str  # shown while an answer is still `...`: English, marked with later(), shown through tr()
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
    missing = [name for name in task.answers if _left_empty(given.get(name, ...))]
    if missing:
        right, message = (
            False,
            tr(
                "Fill in {names} (still `...`), then run the cell again. Hint: {hint}",
                names=", ".join(missing),
                hint=tr(task.hint),
            ),
        )
    else:
        try:
            right, message = True, tr("Right: {explanation}", explanation=task.judge(**given))
        except Wrong as hint:
            right, message = False, tr("Not yet: {hint}", hint=str(hint))
        except Exception as error:  # the student's own code raised: say so, without a traceback
            right, message = (
                False,
                tr(
                    "Not yet: your answer raised {error}: {detail}. Hint: {hint}",
                    error=type(error).__name__,
                    detail=error,
                    hint=tr(task.hint),
                ),
            )
    if not right and os.environ.get(STRICT_ENV) == "1":
        raise AssertionError(f"lesson {lesson}'s exercise: {message}")
    print(message)
    return Verdict(right, message)


def _left_empty(answer) -> bool:
    """An answer still `...`: the value itself, or a function whose body is only `...` (and a docstring). A
    function whose source cannot be read counts as written."""
    if answer is ...:
        return True
    if not inspect.isfunction(answer):
        return False
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(answer)))
    except (OSError, TypeError, SyntaxError):
        return False
    function = tree.body[0] if tree.body else None
    if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return False
    return all(
        isinstance(statement, ast.Expr)
        and isinstance(statement.value, ast.Constant)
        and (statement.value.value is ... or (index == 0 and isinstance(statement.value.value, str)))
        for index, statement in enumerate(function.body)
    )


def _expect(condition: bool, hint: str) -> None:
    if not condition:
        raise Wrong(hint)


def _either(values) -> str:
    """'3', '3 or 4', '2 or 3 or 4', in the lesson's language ('' for none, as ' or '.join gives)."""
    said = str(values[0]) if values else ""
    for value in values[1:]:
        said = tr("{options} or {option}", options=said, option=value)
    return said


def _both(names) -> str:
    """'connector', 'connector and language model', in the lesson's language ('' for none)."""
    said = str(names[0]) if names else ""
    for name in names[1:]:
        said = tr("{names} and {name}", names=said, name=name)
    return said


# ---- the exercises, lesson by lesson -------------------------------------------------------------
@exercise(
    "01",
    "tokens_per_tile",
    "tokens_without_shuffle",
    hint=later("a 448x448 tile is cut into 14x14 patches; pixel shuffle folds each 2x2 block into one token"),
)
def _lesson_01(tokens_per_tile, tokens_without_shuffle, model, tiles):
    _expect(tokens_per_tile == model.num_image_token, tr("448/14 = 32 patches a side; pixel shuffle keeps 1 in 4"))
    _expect(tokens_without_shuffle == (448 // 14) ** 2 * len(tiles), tr("32 x 32 patches per tile, for every tile"))
    return tr("pixel shuffle saves {saved} tokens here.", saved=tokens_without_shuffle - tokens_per_tile * len(tiles))


@exercise(
    "02",
    "llava15_13b",
    "my_replace",
    hint=later("Linear(i, o) has i*o weights and o biases; torch.where(input_ids == placeholder_id) finds the rows"),
)
def _lesson_02(llava15_13b, my_replace, blip2_count):
    import torch

    from . import connectors as C

    expected = C.meta_count(C.llava15_projector, 1024, 5120)
    _expect(llava15_13b == expected, tr("each Linear(i, o) has i*o weights and o biases, and the MLP has two of them"))
    placeholder = 0
    ids, text, images = (
        torch.tensor([[1, placeholder, placeholder, 2, placeholder, placeholder]]),
        torch.randn(1, 6, 3),
        torch.randn(2, 2, 3),
    )
    mine = my_replace(ids, text, images, placeholder)
    _expect(
        isinstance(mine, torch.Tensor) and torch.equal(mine, C.replace_placeholders(ids, text, images, placeholder)),
        tr("the image rows must land on the placeholders, in order, and the other rows stay the text's"),
    )
    return tr(
        "{count:,} parameters, under a third of BLIP-2's Q-Former connector ({blip2_count:,}); "
        "and your torch.where replacement matches course_lib.",
        count=llava15_13b,
        blip2_count=blip2_count,
    )


@exercise(
    "03", "my_itg_mask", hint=later("queries see only queries; text token t sees every query and the tokens up to t")
)
def _lesson_03(my_itg_mask):
    from .qformer_masks import itg_mask

    expected = itg_mask(3, 4).int().tolist()
    names = ["q1", "q2", "q3", "t1", "t2", "t3", "t4"]
    _expect(
        len(my_itg_mask) == 7 and all(len(row) == 7 for row in my_itg_mask),
        tr("the mask is 7 x 7: 3 queries + 4 tokens"),
    )
    wrong = [names[i] for i, (mine, right) in enumerate(zip(my_itg_mask, expected)) if list(mine) != right]
    _expect(
        not wrong,
        tr(
            "the rows of {rows} differ. Queries see only queries; text token t sees every "
            "query and the tokens up to and including itself.",
            rows=", ".join(wrong),
        ),
    )
    return tr("text sees the image summary and its own past; the queries never see the text.")


@exercise(
    "04",
    "tokens_at_quarter",
    "patches_in_token_1_0",
    hint=later(
        "at scale 0.25 each 4x4 block of patches becomes one token; on a 4x4 grid, token (1, 0) is one 2x2 block"
    ),
)
def _lesson_04(tokens_at_quarter, patches_in_token_1_0):
    import torch

    from .pixel_shuffle import pixel_shuffle, token_arithmetic

    _expect(tokens_at_quarter == token_arithmetic(448, 14, 0.25)["tokens per tile"], tr("32x32 patches, 4x4 blocks"))
    folded = pixel_shuffle(torch.arange(16.0).reshape(1, 4, 4, 1))[0, 1, 0].long().tolist()
    _expect(
        list(patches_in_token_1_0) == folded,
        tr("number the 4x4 patches 0-15 row by row; which 2x2 block is token (1, 0)?"),
    )
    return tr(
        "{tokens} tokens a tile at 0.25; token (1, 0) holds patches {patches}.",
        tokens=tokens_at_quarter,
        patches=folded,
    )


@exercise("05", "banner_tiles", hint=later("a 10:1 picture within 12 tiles: which grid, and is a thumbnail added?"))
def _lesson_05(banner_tiles):
    from .tiling import plan_tiles

    plan = plan_tiles(1000, 100, max_num=12)
    _expect(
        banner_tiles == plan.tiles, tr("aspect 10:1 gives the grid {grid}; do not forget the thumbnail", grid=plan.grid)
    )
    return tr(
        "grid {columns}x{rows} + thumbnail = {tiles} tiles, {tokens} tokens.",
        columns=plan.grid[0],
        rows=plan.grid[1],
        tiles=plan.tiles,
        tokens=plan.image_tokens,
    )


@exercise("06", "context_tokens", hint=later("3:1 within 2 tiles: which grid, plus the thumbnail, times 256"))
def _lesson_06(context_tokens, engine):
    from .food_artwork import side_by_side

    wide = side_by_side(["dumplings", "ramen noodles", "mooncake"])
    counted = engine.prompt_text("这几道菜是什么？", wide, max_tiles=2).count(IMG_CONTEXT_TOKEN)
    _expect(context_tokens == counted, tr("3:1 within 2 tiles is a 2x1 grid, plus the thumbnail, x 256"))
    return tr("{tokens} image tokens = {tiles} tiles x 256.", tokens=counted, tiles=counted // 256)


@exercise(
    "07",
    "sessions",
    hint=later("free = 24 GB - weights; cache = free x 0.5; int8 KV per token; sessions = tokens // 8192"),
)
def _lesson_07(sessions):
    from .serving.kv_cache import cache_memory_estimate

    estimate = cache_memory_estimate(24, cache_max_entry_count=0.5, quant_policy=8)
    _expect(
        sessions == estimate.sessions,
        tr("free = 24 - 2.2e9 x 2 B; cache = free x 0.5; int8 KV = 48 KiB per token; sessions = tokens // 8192"),
    )
    # estimate.summary()'s words, in the lesson's language (tests/test_exercises.py keeps the English equal to it)
    return tr(
        "{gpu:g} GiB GPU - {weights:.1f} GiB weights = {free:.1f} GiB free; "
        "x {share:g} = {cache:.1f} GiB KV cache ({kind}, "
        "{kib:g} KiB/token) = {tokens:,} tokens = {sessions} full "
        "{session_len}-token sessions; {left:.1f} GiB left for activations",
        gpu=estimate.gpu_gib,
        weights=estimate.weights_gib,
        free=estimate.free_gib,
        share=estimate.cache_max_entry_count,
        cache=estimate.cache_gib,
        kind={0: "bf16/fp16", 8: "int8", 4: "int4"}[estimate.quant_policy],
        kib=estimate.bytes_per_token / 1024,
        tokens=estimate.tokens,
        sessions=estimate.sessions,
        session_len=estimate.session_len,
        left=estimate.left_gib,
    )


@exercise("08", "last_wait_seconds", hint=later("the queue admits all four; does the engine answer them together?"))
def _lesson_08(last_wait_seconds):
    from .serving.gradio_app import CONCURRENCY

    users, seconds_each = 4, 2
    _expect(
        users <= CONCURRENCY and last_wait_seconds == users * seconds_each,
        tr("admitted together, but the engine's lock serves them one by one"),
    )
    return tr(
        "{seconds} s. LMDeploy would batch the four and answer all in little more than 2 s.", seconds=last_wait_seconds
    )


@exercise("09", "answer", hint=later('"A", "B", "C" or "D": imagine a model that knows only the 12 base dishes'))
def _lesson_09(answer, dishes, test):
    _expect(
        answer == "B", tr("imagine a model that knows only the 12 base dishes: what can it do with 3 known options?")
    )
    base_names = {d[lang] for d in dishes if d["group"] == "base" for lang in ("zh", "en")}
    mc_new = [r for r in test if r["group"] == "new" and r["kind"] == "mc"]
    left = {len([c for c in r["choices"] if c not in base_names]) for r in mc_new}
    return tr(
        "ruling out the base dishes leaves {options} unknown options in each of the "
        "{questions} new-dish questions, so a model that never saw the new dishes scores chance (25 %). With "
        "base-dish distractors it would leave one option, the right answer, every time: 100 % without recognising "
        "anything.",
        options=_either(sorted(left)),
        questions=len(mc_new),
    )


@exercise(
    "10",
    "your_answer",
    hint=later("one iteration per batch of BATCH_SIZE records (the last batch may be short), every epoch"),
)
def _lesson_10(your_answer, records, batch_size, total_iters):
    _expect(your_answer == total_iters, tr("iterations per epoch (ceil(records / batch size)) times epochs"))
    return tr(
        "{records} records, batch {batch_size} -> {iterations} iterations.",
        records=records,
        batch_size=batch_size,
        iterations=your_answer,
    )


@exercise(
    "11", "your_answer", hint=later("Wilson: (p + z²/2n - z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n), with z = 1.96")
)
def _lesson_11(your_answer):
    from .evaluation import wilson_interval

    low, high = wilson_interval(90, 96)
    _expect(abs(your_answer - low) < 0.01, tr("compute the Wilson interval for 90 of 96 and take its lower end"))
    return tr("90/96 = {share:.1%}, 95% interval {low:.1%} to {high:.1%}.", share=90 / 96, low=low, high=high)


# ---- further exercises, for the lecture sections added later ----------------------------------------
@exercise("01b", "patches_at_224", hint=later("a picture of side s cut into 14-pixel patches has (s / 14)² of them"))
def _lesson_01b(patches_at_224):
    _expect(patches_at_224 == (224 // 14) ** 2, tr("224 / 14 = 16 patches a side"))
    return tr(
        "{patches} patches at 224 px; going to 448 px gave InternViT four times as many, 1024.", patches=patches_at_224
    )


@exercise(
    "02b", "new_token_cost", hint=later("the input embedding and lm_head are each vocabulary x width, and both train")
)
def _lesson_02b(new_token_cost):
    from . import internvl2_2b
    from .connectors import special_token_training_cost

    expected = special_token_training_cost(internvl2_2b.LLM["vocab_size"], internvl2_2b.LLM["hidden"])
    _expect(new_token_cost == expected, tr("two matrices (embedding and lm_head, not tied), each 92,553 x 2048"))
    return tr(
        "{count:,} parameters, about {share:.0%} of the whole model, for two new tokens.",
        count=new_token_cost,
        share=new_token_cost / 2.2e9,
    )


@exercise(
    "10b",
    "zero3_four_gpus",
    hint=later("ZeRO-3 divides weights, gradients and Adam's state, 16 bytes a parameter, by the GPUs"),
)
def _lesson_10b(zero3_four_gpus):
    from . import internvl2_2b
    from .finetune.memory import zero_memory

    expected = zero_memory(internvl2_2b.PARAMETERS, internvl2_2b.PARAMETERS, gpus=4, stage=3)["total"]
    _expect(abs(zero3_four_gpus - expected) < 0.1, tr("16 bytes x 2.2 B parameters, divided over 4 GPUs, in GB"))
    return tr("{gb:.1f} GB per GPU before activations, against 35.2 GB on one GPU without ZeRO.", gb=expected)


@exercise(
    "02c",
    "llava_stage2_trained",
    "det_decoder_input",
    hint=later("read LLaVA-1.5's second row of the training-stage grid; a decoder gets one hidden state per query"),
)
def _lesson_02c(llava_stage2_trained, det_decoder_input, hidden_size):
    from .diagrams import PARTS, TRAINING_STAGES

    stage = next(s for s in TRAINING_STAGES if s.model == "LLaVA-1.5" and s.stage.startswith("2"))
    trained = {part for part, state in zip(PARTS, stage.parts) if state != "frozen"}
    _expect(
        set(llava_stage2_trained) == trained,
        tr("in its second stage LLaVA-1.5 keeps CLIP frozen: which two parts change?"),
    )
    _expect(
        tuple(det_decoder_input) == (8, hidden_size),
        tr("8 [DET] queries, each leaves the language model as one hidden state of the model's width"),
    )
    return tr(
        "{parts} train; the detector reads {vectors} vectors of width {width}, whatever the request's length.",
        parts=_both(sorted(trained)),
        vectors=det_decoder_input[0],
        width=det_decoder_input[1],
    )


@exercise(
    "06b",
    "tokens_saved",
    hint=later(
        "add up what each turn reads with the whole conversation sent again, and "
        "with the kept cache; the difference is saved"
    ),
)
def _lesson_06b(tokens_saved, costs):
    expected = sum(c.prompt_tokens for c in costs) - sum(c.new_tokens for c in costs)
    _expect(tokens_saved == expected, tr("sum prompt_tokens over the turns, minus the sum of new_tokens"))
    share = expected / sum(c.prompt_tokens for c in costs)
    return tr(
        "{tokens} tokens ({share:.0%} of the reading) are not read again over {turns} turns.",
        tokens=expected,
        share=share,
        turns=len(costs),
    )


@exercise(
    "11b",
    "your_precision",
    "your_f1",
    hint=later("precision: right yes / all yes; recall: right yes / questions whose answer is yes; F1 = 2PR / (P + R)"),
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
    _expect(abs(your_precision - figures["precision"]) < 0.01, tr("45 of its 70 yes answers were right"))
    _expect(abs(your_f1 - figures["f1"]) < 0.01, tr("recall is 45 of the 50 questions whose answer is yes"))
    return tr(
        "precision {precision:.2f}, recall {recall:.2f}, F1 {f1:.2f}, accuracy "
        "{accuracy:.0%}: it said yes {yes_ratio:.0%} of the time, POPE's sign of a model that "
        "hallucinates.",
        precision=figures["precision"],
        recall=figures["recall"],
        f1=figures["f1"],
        accuracy=figures["accuracy"],
        yes_ratio=figures["yes_ratio"],
    )


# ---- build it: the student writes the mechanism, compared with the kit's (and the official) code ---------------
def _as_bool_matrix(mask, name: str, size: int):
    import torch

    try:
        mask = torch.as_tensor(mask)
    except Exception:
        raise Wrong(
            tr("{name} must return a tensor (or a nested list) of shape ({size}, {size})", name=name, size=size)
        ) from None
    _expect(
        tuple(mask.shape) == (size, size),
        tr(
            "{name} returned shape {shape}; it should be ({size}, {size})",
            name=name,
            shape=tuple(mask.shape),
            size=size,
        ),
    )
    return mask.bool()


TASK_RULES = {  # what a wrong mask is told: the rows that differ, then the task's rule (shown through tr())
    "ITC": later(
        "my_itc({queries}, {text}) differs in the rows of {rows}. "
        "ITC: queries see only queries and text only text (unimodal)"
    ),
    "ITM": later(
        "my_itm({queries}, {text}) differs in the rows of {rows}. "
        "ITM: every position sees every position (bidirectional)"
    ),
    "ITG": later(
        "my_itg({queries}, {text}) differs in the rows of {rows}. "
        "ITG: queries see only queries; text token t sees every query and the text tokens up to and including t"
    ),
}


@exercise(
    "03b",
    "my_itc",
    "my_itm",
    "my_itg",
    hint=later(
        "each returns a (Q+T) x (Q+T) boolean tensor, queries first; torch.ones(...).tril() gives a causal block, "
        "and `is_query = torch.arange(Q + T) < Q` marks the query rows"
    ),
)
def _lesson_03b(my_itc, my_itm, my_itg):
    from .qformer_masks import MASK_BUILDERS

    sizes = [(3, 4), (1, 1), (2, 5), (4, 6), (6, 2), (32, 8)]
    mine = {"ITC": my_itc, "ITM": my_itm, "ITG": my_itg}
    for task, build in MASK_BUILDERS.items():
        name = f"my_{task.lower()}"
        for queries, text in sizes:
            got = _as_bool_matrix(mine[task](queries, text), name, queries + text)
            expected = build(queries, text)
            if not bool((got == expected).all()):
                rows = [f"q{i + 1}" for i in range(queries)] + [f"t{i + 1}" for i in range(text)]
                wrong = [rows[i] for i in range(queries + text) if not bool((got[i] == expected[i]).all())]
                shown = ", ".join(wrong[:6]) + (", ..." if len(wrong) > 6 else "")
                differs = TASK_RULES[task]  # marked with later() above
                raise Wrong(tr(differs, queries=queries, text=text, rows=shown))
    return tr(
        "your three masks equal course_lib's on {sizes} sizes, up to BLIP-2's Q = 32. One sequence, one "
        "self-attention: the mask alone turns the Q-Former into two separate encoders (ITC), one joint encoder "
        "(ITM) or an image-grounded decoder (ITG).",
        sizes=len(sizes),
    )


def _pixel_shuffle_cases():
    import torch

    generator = torch.Generator().manual_seed(0)
    shapes = [(2, 32, 32, 8), (3, 6, 10, 5), (1, 2, 2, 3), (2, 8, 4, 16), (1, 4, 4, 1)]
    return [torch.randn(*shape, generator=generator) for shape in shapes]


@exercise(
    "04b",
    "my_pixel_shuffle",
    hint=later(
        "view x as (N, H/2, 2, W/2, 2, C): which axes must sit side by side before the last reshape to "
        "(N, H/2, W/2, 4C)? Channels in order top-left, top-right, bottom-left, bottom-right"
    ),
)
def _lesson_04b(my_pixel_shuffle, model=None):
    import torch

    from .pixel_shuffle import pixel_shuffle, via_pixel_unshuffle

    patches = torch.arange(32.0).reshape(1, 4, 4, 2)  # patch p has channels 2p, 2p + 1
    got = my_pixel_shuffle(patches.clone())
    _expect(isinstance(got, torch.Tensor), tr("my_pixel_shuffle must return a tensor"))
    _expect(
        tuple(got.shape) == (1, 2, 2, 8),
        tr(
            "a (1, 4, 4, 2) grid gave shape {shape}; it should be (1, 2, 2, 8): half the rows, half the "
            "columns, 4x the channels",
            shape=tuple(got.shape),
        ),
    )
    if not torch.equal(got, pixel_shuffle(patches)):
        ids = (got[0, 0, 0, ::2] / 2).long().tolist()
        _expect(
            not torch.equal(got, pixel_shuffle(patches, ps_version="v1")),
            tr(
                "each token holds the right patches but the grid is transposed (that is ps_version v1): permute "
                "the rows and columns back"
            ),
        )
        unshuffled = torch.nn.PixelUnshuffle(2)(patches.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        _expect(
            not torch.equal(got, unshuffled),
            tr(
                "the right patches in nn.PixelUnshuffle's channel order (channel c, block position k at c*4 + k); "
                "InternVL keeps each patch's C channels together: block position k at k*C + c"
            ),
        )
        raise Wrong(
            tr(
                "token (0, 0) should hold patches [0, 1, 4, 5] (top-left, top-right, bottom-left, bottom-right), "
                "each patch's channels together; yours starts with patches {patches}. Try it on "
                "torch.arange(16.0).reshape(1, 4, 4, 1) and print token (0, 0)",
                patches=ids,
            )
        )
    cases = _pixel_shuffle_cases()
    for x in cases:
        got = my_pixel_shuffle(x.clone())
        shape = tuple(x.shape)
        _expect(
            isinstance(got, torch.Tensor) and torch.equal(got, pixel_shuffle(x)),
            tr(
                "right on the 4x4 example, wrong on a random tensor of shape {shape}: use x's own sizes, not 4",
                shape=shape,
            ),
        )
        _expect(
            torch.equal(got, via_pixel_unshuffle(x)), tr("differs from nn.PixelUnshuffle on shape {shape}", shape=shape)
        )
        if model is not None:
            _expect(
                torch.equal(got, model.pixel_shuffle(x, 0.5)),
                tr("differs from model.pixel_shuffle on {shape}", shape=shape),
            )
    if model is None:
        return tr(
            "equal to course_lib's pixel_shuffle and nn.PixelUnshuffle (channels reordered) on "
            "{tensors} tensors. A reshape, a permute and a reshape: no weights, no value lost, and a tile's "
            "1024 patches become 256 tokens.",
            tensors=len(cases) + 1,
        )
    return tr(
        "equal to course_lib's pixel_shuffle, the checkpoint's own model.pixel_shuffle (InternVL's code) and "
        "nn.PixelUnshuffle (channels reordered) on {tensors} tensors. A reshape, a permute and a reshape: no "
        "weights, no value lost, and a tile's 1024 patches become 256 tokens.",
        tensors=len(cases) + 1,
    )


def _tiling_cases():
    import random

    rng = random.Random(0)
    special = [(448, 448), (600, 600), (1000, 1000), (896, 448), (1792, 896), (1000, 100), (640, 480), (100, 1000)]
    drawn = [(int(10 ** rng.uniform(1.7, 3.7)), int(10 ** rng.uniform(1.7, 3.7))) for _ in range(400)]
    return special + drawn


@exercise(
    "05b",
    "my_grid",
    hint=later(
        "aspect = width / height; keep the grid (columns, rows) whose columns / rows is closest; on an exact tie, "
        "take the later grid only if width * height > 0.5 * 448 * 448 * columns * rows"
    ),
)
def _lesson_05b(my_grid):
    from .tiling import closest_grid, target_ratios

    checked = 0
    for max_num in (12, 6, 2, 1, 24):
        grids = target_ratios(1, max_num)
        for width, height in _tiling_cases():
            expected = closest_grid(width, height, grids)
            got = my_grid(width, height, list(grids))
            checked += 1
            if tuple(got) == expected:
                continue
            aspect = width / height
            if tuple(got) == expected[::-1]:
                raise Wrong(
                    tr(
                        "{width}x{height}: you gave {grid}, transposed: a grid is (columns, rows)",
                        width=width,
                        height=height,
                        grid=tuple(got),
                    )
                )
            if tuple(got) in grids and abs(aspect - got[0] / got[1]) == abs(aspect - expected[0] / expected[1]):
                bigger = max(tuple(got), expected, key=lambda grid: grid[0] * grid[1])
                half = 448 * 448 * bigger[0] * bigger[1] // 2
                raise Wrong(
                    tr(
                        "{width}x{height} (max {max_num} tiles): {yours} and {right} are equally close to its "
                        "aspect {aspect:.3g}. On a tie InternVL takes the later grid only if the picture has more "
                        "than half of its pixels: {pixels:,} against half of {bigger}'s, {half:,}",
                        width=width,
                        height=height,
                        max_num=max_num,
                        yours=f"{got[0]}x{got[1]}",
                        right=f"{expected[0]}x{expected[1]}",
                        aspect=aspect,
                        pixels=width * height,
                        bigger=f"{bigger[0]}x{bigger[1]}",
                        half=half,
                    )
                )
            raise Wrong(
                tr(
                    "{width}x{height} (aspect {aspect:.3g}, max {max_num} tiles) should get {right}, "
                    "you gave {got}: which candidate's columns / rows is closest to width / height?",
                    width=width,
                    height=height,
                    aspect=aspect,
                    max_num=max_num,
                    right=f"{expected[0]}x{expected[1]}",
                    got=got,
                )
            )
    return tr(
        "the same grid as course_lib.tiling on {checked} (size, budget) pairs. The tie-break is why 600x600 stays "
        "one tile while 1000x1000 becomes 3x3 (1,000,000 pixels > half of 9 tiles' 1,806,336): a big picture earns "
        "more tiles, a small one is not blown up.",
        checked=checked,
    )


PROMPT_SETS = [
    ["图中的菜是什么？", "它是哪里的菜？", "用英文说它的名字。", "它一般怎么吃？"],
    ["图中的菜是什么？", "What dish is in the picture? Answer in one word."],
    ["有几个？"],
    ["它是哪里的菜？", "它是哪里的菜？"],
]


@exercise(
    "06c",
    "my_left_pad",
    hint=later(
        "L = the longest list; each row is [pad_id] * (L - len(ids)) + ids, its mask 0 for each pad and 1 for "
        "each token; return two (batch, L) tensors"
    ),
)
def _lesson_06c(my_left_pad, model_path):
    import torch
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_path), trust_remote_code=True)
    side = tokenizer.padding_side
    for prompts in PROMPT_SETS:
        lists = [tokenizer(prompt).input_ids for prompt in prompts]
        tokenizer.padding_side = "left"  # what batch_chat does
        try:
            expected = tokenizer(prompts, padding=True, return_tensors="pt")
        finally:
            tokenizer.padding_side = side
        got = my_left_pad([list(ids) for ids in lists], tokenizer.pad_token_id)
        _expect(
            isinstance(got, tuple) and len(got) == 2, tr("return two things: (input_ids, attention_mask), both tensors")
        )
        ids, mask = (torch.as_tensor(part) for part in got)
        lengths = [len(x) for x in lists]
        shape = (len(prompts), max(lengths))
        _expect(
            tuple(ids.shape) == shape,
            tr("prompts of {lengths} tokens: input_ids should be {shape}", lengths=lengths, shape=shape),
        )
        right_padded = torch.tensor([x + [tokenizer.pad_token_id] * (shape[1] - len(x)) for x in lists])
        _expect(
            not torch.equal(ids.long(), right_padded) or len(set(lengths)) == 1,
            tr(
                "that is right padding: the model writes its answer after the last column, so every prompt must "
                "end there; put the pads on the left"
            ),
        )
        _expect(
            torch.equal(ids.long(), expected["input_ids"]),
            tr("prompts of {lengths} tokens: input_ids differ from the tokenizer's", lengths=lengths),
        )
        _expect(
            torch.equal(mask.long(), expected["attention_mask"]),
            tr("the mask is 1 over each prompt's own tokens and 0 over its pads"),
        )
    lists = [tokenizer(prompt).input_ids for prompt in PROMPT_SETS[0]]
    mask = torch.as_tensor(my_left_pad(lists, tokenizer.pad_token_id)[1])
    rows = "\n".join(f"  {''.join(str(int(v)) for v in row)}  {q}" for row, q in zip(mask, PROMPT_SETS[0]))
    return tr(
        "the same input_ids and attention mask as the tokenizer's left padding (InternVL2's batch_chat) for "
        "{batches} batches. Your mask for the first one:\n{rows}\nEvery prompt ends in the last column, "
        "where generation goes on; the 0s keep the pads out of attention.",
        batches=len(PROMPT_SETS),
        rows=rows,
    )


def _request_pictures():
    from PIL import Image

    gradient = Image.linear_gradient("L").resize((64, 16)).convert("RGB")
    return [Image.new("RGB", (8, 8), (200, 60, 40)), gradient, Image.new("RGB", (12, 30), (20, 120, 220))]


@exercise(
    "07b",
    "my_messages",
    hint=later(
        '[{"role": "user", "content": [image part, text part]}]; the image part is {"type": "image_url", '
        '"image_url": {"url": "data:image/png;base64," + base64 text, "max_dynamic_patch": n}}'
    ),
)
def _lesson_07b(my_messages):
    import base64
    import json

    from .serving import openai_client as oc

    cases = [("图中的菜是什么？", 4), ("What dish is this?", 1), ("这道菜怎么做？", 12)]
    for picture, (question, tiles) in zip(_request_pictures(), cases):
        expected = oc.chat_messages(question, picture, max_dynamic_patch=tiles)
        url = expected[0]["content"][0]["image_url"]["url"]
        png = base64.b64decode(url.split(",", 1)[1])
        got = my_messages(question, png, tiles)
        try:
            json.dumps(got)
        except TypeError as error:
            raise Wrong(
                tr("the messages must be plain JSON ({error}): decode the base64 bytes to text", error=error)
            ) from None
        _expect(
            isinstance(got, list) and len(got) == 1 and isinstance(got[0], dict),
            tr("return a list holding one message, the user's"),
        )
        _expect(got[0].get("role") == "user", tr('the message\'s role is "user"'))
        content = got[0].get("content")
        _expect(
            isinstance(content, list) and len(content) == 2, tr("content is a list of two parts: the image, the text")
        )
        _expect(
            content[0].get("type") == "image_url",
            tr("the image goes first, then the question (where InternVL2 puts <image>)"),
        )
        _expect(content[1] == expected[0]["content"][1], tr('the text part is {"type": "text", "text": question}'))
        given = content[0].get("image_url")
        _expect(
            isinstance(given, dict) and given.get("max_dynamic_patch") == tiles,
            tr("max_dynamic_patch goes inside image_url, next to url: it is that picture's tile budget"),
        )
        _expect(
            str(given.get("url", "")).startswith("data:image/png;base64,"),
            tr('the url is a data URL: "data:image/png;base64," then the base64 text'),
        )
        _expect(
            given == expected[0]["content"][0]["image_url"], tr("the base64 text must be that of the PNG bytes given")
        )
    return tr(
        "your messages equal course_lib's chat_messages for {pictures} pictures. The last picture's {png} PNG "
        "bytes travel as {characters} base64 characters (4 for every 3 bytes), "
        "which is why a request with photos weighs hundreds of KiB.",
        pictures=len(cases),
        png=len(png),
        characters=len(url) - len("data:image/png;base64,"),
    )


@exercise(
    "09b",
    "my_xtuner_record",
    hint=later(
        '{"image": image, "conversations": [{"from": "human", "value": ...}, {"from": "gpt", "value": ...}]}; '
        'item["answer"] is a string "0"-"3"'
    ),
)
def _lesson_09b(my_xtuner_record, release):
    from .foodieqa import read_sivqa, xtuner_record

    raw = read_sivqa(release, log=lambda *_: None)
    for index, item in enumerate(raw):
        expected = xtuner_record(release, index, item)
        got = my_xtuner_record(dict(item), expected["image"])
        _expect(isinstance(got, dict), tr("return a dict: the record"))
        _expect(got.get("image") == expected["image"], tr("the record's image is the path it is given"))
        turns = got.get("conversations")
        _expect(isinstance(turns, list) and len(turns) == 2, tr("conversations holds two turns: human, then gpt"))
        _expect(
            [turn.get("from") for turn in turns] == ["human", "gpt"],
            tr('the turns\' "from" are "human" and "gpt" (XTuner knows no other roles)'),
        )
        human, gpt = (turn.get("value") for turn in turns)
        want_human, want_gpt = (turn["value"] for turn in expected["conversations"])
        _expect(
            human != "<image>\n" + item["question"],
            tr(
                "that is the kit's own layout (tag first); the lecture's conversion puts the tag after the question: "
                'question + "\\n<image>"'
            ),
        )
        _expect(
            human == want_human,
            tr(
                "record {index}: the human turn should be {want!r}, not {got!r}",
                index=index,
                want=want_human,
                got=human,
            ),
        )
        _expect(
            gpt == want_gpt,
            tr("record {index}: the gpt turn should be {want!r}, not {got!r}", index=index, want=want_gpt, got=gpt),
        )
    return tr(
        "all {records} records as the lecture converted them. Look at what the human turn dropped: the four "
        "options. Trained this way, the model learns to state the answer and name the dish, not to pick among "
        "options, which is what FoodieQA's evaluation then asks of it.",
        records=len(raw),
    )


@exercise(
    "11c",
    "my_wilson",
    "my_mcnemar",
    hint=later(
        "Wilson: centre (p + z²/2n) / (1 + z²/n), half-width z·sqrt(p(1-p)/n + z²/4n²) / (1 + z²/n), z = 1.96; "
        "McNemar: 2 x P(X <= min(fixed, broken)) for X ~ Binomial(fixed + broken, 1/2), at most 1"
    ),
)
def _lesson_11c(my_wilson, my_mcnemar):
    from scipy.stats import binomtest

    from .evaluation.stats import mcnemar_p, wilson_interval

    intervals = [(c, n) for n in range(1, 31) for c in range(n + 1)] + [(90, 96), (0, 200), (200, 200), (37, 111)]
    for correct, n in intervals:
        low, high = (float(v) for v in my_wilson(correct, n))
        want_low, want_high = wilson_interval(correct, n)
        if abs(low - want_low) > 1e-4 or abs(high - want_high) > 1e-4:
            p = correct / n
            wald = 1.96 * (p * (1 - p) / n) ** 0.5
            _expect(
                max(abs(low - max(0.0, p - wald)), abs(high - min(1.0, p + wald))) > 1e-4,
                tr(
                    "{correct}/{n}: that is the textbook p ± z·sqrt(p(1-p)/n), which collapses to a point at 0/n "
                    "and n/n; Wilson's centre moves toward 1/2: (p + z²/2n) / (1 + z²/n)",
                    correct=correct,
                    n=n,
                ),
            )
            raise Wrong(
                tr(
                    "{correct}/{n}: Wilson gives {want_low:.4f} to {want_high:.4f}, you gave {low:.4f} to {high:.4f}",
                    correct=correct,
                    n=n,
                    want_low=want_low,
                    want_high=want_high,
                    low=low,
                    high=high,
                )
            )
    pairs = [(fixed, broken) for fixed in range(21) for broken in range(21)] + [(40, 25), (3, 60)]
    for fixed, broken in pairs:
        got, want = float(my_mcnemar(fixed, broken)), mcnemar_p(fixed, broken)
        if abs(got - want) > 1e-9:
            _expect(
                abs(2 * got - want) > 1e-9 or want >= 1,
                tr(
                    "fixed {fixed}, broken {broken}: yours is half of it; the test is two-sided, double the tail",
                    fixed=fixed,
                    broken=broken,
                ),
            )
            _expect(
                got <= 1,
                tr(
                    "fixed {fixed}, broken {broken}: a p-value is at most 1; cap it with min(1, ...)",
                    fixed=fixed,
                    broken=broken,
                ),
            )
            raise Wrong(
                tr(
                    "fixed {fixed}, broken {broken}: McNemar's exact p is {want:.6f}, you gave {got:.6f}",
                    fixed=fixed,
                    broken=broken,
                    want=want,
                    got=got,
                )
            )
    agree = all(
        abs(a - b) < 1e-9
        for c, n in intervals
        for a, b in zip(wilson_interval(c, n), binomtest(c, n).proportion_ci(0.95, method="wilson"))
    ) and all(abs(mcnemar_p(f, b) - binomtest(min(f, b), f + b, 0.5).pvalue) < 1e-9 for f, b in pairs if f + b)
    low, high = wilson_interval(8, 10)
    figures = dict(
        intervals=len(intervals),
        pairs=len(pairs),
        low=low,
        high=high,
        p_8_1=mcnemar_p(8, 1),
        p_6_3=mcnemar_p(6, 3),
    )
    if agree:
        return tr(
            "equal to course_lib.evaluation on {intervals} intervals and {pairs} McNemar pairs (and scipy agrees). "
            "8 of 10 is {low:.0%} to {high:.0%}: ten questions say little. McNemar reads only the questions that "
            "changed: 8 fixed vs 1 broken gives p = {p_8_1:.3f}, 6 vs 3 gives {p_6_3:.2f}, however many questions "
            "stayed the same.",
            **figures,
        )
    return tr(
        "equal to course_lib.evaluation on {intervals} intervals and {pairs} McNemar pairs. "
        "8 of 10 is {low:.0%} to {high:.0%}: ten questions say little. McNemar reads only the questions that "
        "changed: 8 fixed vs 1 broken gives p = {p_8_1:.3f}, 6 vs 3 gives {p_6_3:.2f}, however many questions "
        "stayed the same.",
        **figures,
    )


def _lora_layers(model):
    """(name, a float32 CPU copy) of the language model's first attention.wqkv (no bias in InternLM2) and the
    vision encoder's first attn.qkv (with a bias): the layers XTuner's LoRA wraps."""
    import copy

    import torch

    found = []
    for suffix in ("attention.wqkv", "attn.qkv"):
        for name, module in model.named_modules():
            if name.endswith(suffix) and isinstance(module, torch.nn.Linear):
                found.append((name, copy.deepcopy(module).to("cpu", torch.float32)))
                break
    if not found:
        raise ValueError("the model has no attention.wqkv or attn.qkv linear layer; pass an InternVL2 checkpoint")
    return found


@exercise(
    "10c",
    "my_lora_forward",
    hint=later(
        "x @ W.T + bias, plus (alpha / r) * x @ A.T @ B.T; weight is (out, in), lora_A (r, in), lora_B (out, r), "
        "and bias may be None"
    ),
)
def _lesson_10c(my_lora_forward, model):
    from collections import OrderedDict

    import torch
    from peft import LoraConfig, get_peft_model

    generator = torch.Generator().manual_seed(0)
    checked = []
    for (name, layer), (r, alpha) in zip(_lora_layers(model) * 2, [(8, 16), (4, 32), (2, 4), (16, 8)]):
        holder = torch.nn.Sequential(OrderedDict(proj=layer))
        wrapped = get_peft_model(
            holder, LoraConfig(r=r, lora_alpha=alpha, lora_dropout=0.0, target_modules=["proj"])
        ).base_model.model.proj
        lora_a, lora_b = wrapped.lora_A["default"].weight, wrapped.lora_B["default"].weight
        with torch.no_grad():  # peft starts B at zero, where any update would pass; make it count
            lora_b.copy_(torch.randn(lora_b.shape, generator=generator) * 0.1)
            for shape in ((3, layer.in_features), (2, 5, layer.in_features)):
                x = torch.randn(shape, generator=generator)
                expected = wrapped(x)
                weight, bias = layer.weight.clone(), None if layer.bias is None else layer.bias.clone()
                got = my_lora_forward(x.clone(), weight, bias, lora_a.clone(), lora_b.clone(), alpha, r)
                _expect(isinstance(got, torch.Tensor), tr("my_lora_forward must return a tensor"))
                _expect(
                    tuple(got.shape) == tuple(expected.shape),
                    tr(
                        "{name}: x of shape {shape} should give {want}, yours is {got}",
                        name=name,
                        shape=shape,
                        want=tuple(expected.shape),
                        got=tuple(got.shape),
                    ),
                )
                if torch.allclose(got, expected, atol=1e-4, rtol=1e-4):
                    continue
                base = torch.nn.functional.linear(x, weight, bias)
                update = x @ lora_a.T @ lora_b.T
                for scale, why in (
                    (0.0, tr("that is the frozen layer alone: add the low-rank update (alpha / r) * B A x")),
                    (
                        1.0,
                        tr(
                            "the update is scaled by alpha / r (here {alpha} / {r}); yours is not scaled",
                            alpha=alpha,
                            r=r,
                        ),
                    ),
                    (r / alpha, tr("the scale is alpha / r = {alpha} / {r}, not r / alpha", alpha=alpha, r=r)),
                ):
                    _expect(not torch.allclose(got, base + scale * update, atol=1e-4, rtol=1e-4), why)
                raise Wrong(
                    tr(
                        "{name} with r = {r}, alpha = {alpha}: your output differs from peft's LoRA layer",
                        name=name,
                        r=r,
                        alpha=alpha,
                    )
                )
        checked.append((name, layer, r))
    name, layer, _ = checked[0]
    full, r = layer.in_features * layer.out_features, 8
    low_rank = r * (layer.in_features + layer.out_features)
    return tr(
        "equal to peft's LoRA layer on this checkpoint's {names}, at ranks 2 to 16. On {name} "
        "({inputs} -> {outputs}), r = {r} trains {low_rank:,} numbers instead of {full:,} "
        "({share:.0%}); B starts at zero, so training starts exactly "
        "from the base model, and after training B A can be added into W (the conversion's merge).",
        names=_both(sorted({n for n, _, _ in checked})),
        name=name,
        inputs=layer.in_features,
        outputs=layer.out_features,
        r=r,
        low_rank=low_rank,
        full=full,
        share=low_rank / full,
    )
