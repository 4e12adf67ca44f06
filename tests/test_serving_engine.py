"""The serving engine API: settings, backend choice, the transformers backend end to end on the tiny checkpoint,
the prompt both backends build, and LMDeploy where it can run."""

import dataclasses
import json
import os
import subprocess
import sys
import threading

import pytest
import torch
from conftest import FOOD_IMAGES, REPO_ROOT

from course_lib.sample_pictures import awkward_pictures
from course_lib.serving import GenerationSettings, Session, choose_backend, lmdeploy_status
from course_lib.serving.engine import ContextTooLong, make_turn
from course_lib.serving.serving_env import lmdeploy_importable
from course_lib.serving.transformers_backend import TransformersEngine
from course_lib.tiling import ImageLoadError, open_rgb

DUMPLINGS = FOOD_IMAGES / "1f95f.webp"
NOODLES = FOOD_IMAGES / "1f35c.webp"
GREEDY = GenerationSettings(max_new_tokens=24)
LMDEPLOY_OK, LMDEPLOY_WHY = lmdeploy_status()

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def engine(tiny, tiny_path):
    model, tokenizer = tiny
    return TransformersEngine(model, tokenizer, model_path=tiny_path, settings=GREEDY)


@pytest.fixture(scope="module")
def wide_image():
    from course_lib.food_artwork import side_by_side

    return side_by_side(["dumplings", "ramen noodles", "mooncake"])  # 3:1 -> 3 tiles + thumbnail at the default budget


# ---- settings -----------------------------------------------------------------------------------
LMDEPLOY_DEFAULTS = dict(
    max_new_tokens=512, do_sample=False, top_p=1.0, top_k=50, temperature=0.8, repetition_penalty=1.0
)  # lmdeploy/messages.py, GenerationConfig, 0.18.0


def test_settings_have_lmdeploys_names_and_defaults():
    ours = {f.name: f.default for f in dataclasses.fields(GenerationSettings)}
    assert ours == LMDEPLOY_DEFAULTS
    if lmdeploy_importable():
        from lmdeploy import GenerationConfig

        theirs = {f.name: f.default for f in dataclasses.fields(GenerationConfig)}
        assert {name: theirs[name] for name in ours} == ours


def test_settings_convert_for_each_backend():
    greedy = GenerationSettings(max_new_tokens=64, temperature=0.3, repetition_penalty=1.3)
    assert greedy.to_transformers() == {"max_new_tokens": 64, "do_sample": False}  # LMDeploy's greedy ignores them too
    assert greedy.lmdeploy_kwargs(["<|im_end|>"]) == dict(
        max_new_tokens=64,
        do_sample=False,
        top_p=1.0,
        top_k=50,
        temperature=0.3,
        repetition_penalty=1.3,
        stop_words=["<|im_end|>"],
    )
    # The api_server always samples: greedy travels as top_k=1.
    assert greedy.to_openai(["<|im_end|>"]) == dict(
        temperature=1.0,
        top_p=1.0,
        max_completion_tokens=64,
        stop=["<|im_end|>"],
        extra_body=dict(top_k=1, repetition_penalty=1.0),
    )
    sampling = GenerationSettings(
        max_new_tokens=32, do_sample=True, top_p=0.9, top_k=40, temperature=0.7, repetition_penalty=1.1
    )
    assert sampling.to_transformers() == dict(
        max_new_tokens=32, do_sample=True, top_p=0.9, top_k=40, temperature=0.7, repetition_penalty=1.1
    )
    assert sampling.to_openai()["extra_body"] == dict(top_k=40, repetition_penalty=1.1)
    assert sampling.replace(top_k=5).top_k == 5 and sampling.top_k == 40


@pytest.mark.parametrize(
    "bad",
    [
        dict(max_new_tokens=0),
        dict(top_p=0.0),
        dict(top_p=1.5),
        dict(top_k=-1),
        dict(temperature=0.0),
        dict(temperature=2.5),
        dict(repetition_penalty=0.0),
    ],
)
def test_settings_refuse_values_the_backends_reject(bad):
    name = next(iter(bad))
    with pytest.raises(ValueError, match=name):
        GenerationSettings(**bad)


# ---- which backend ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "has_lmdeploy, has_cuda, expected",
    [
        (True, True, "lmdeploy"),
        (True, False, "transformers"),
        (False, True, "transformers"),
        (False, False, "transformers"),
    ],
)
def test_auto_picks_lmdeploy_only_where_it_can_run(has_lmdeploy, has_cuda, expected):
    name, why = choose_backend("auto", has_lmdeploy, has_cuda)
    assert name == expected and why
    if not has_lmdeploy:
        assert ".venv-serving" in why[0]
    elif not has_cuda:
        assert "no CUDA GPU" in why[0]


def test_asking_for_lmdeploy_where_it_cannot_run_says_why():
    with pytest.raises(RuntimeError, match="no CUDA GPU"):
        choose_backend("lmdeploy", has_lmdeploy=True, has_cuda=False)
    assert choose_backend("transformers", True, True)[0] == "transformers"
    with pytest.raises(ValueError, match="backend must be one of"):
        choose_backend("vllm")


def test_make_engine_here_says_which_backend_and_why(monkeypatch, tiny_path):
    from course_lib.config import resolve
    from course_lib.serving import make_engine

    monkeypatch.setenv("COURSE_MODE", "tiny")
    if LMDEPLOY_OK:
        pytest.skip("LMDeploy can run here; the pipeline test covers make_engine")
    engine = make_engine(resolve(), model_path=tiny_path)
    assert engine.backend == "transformers"
    assert engine.why[0] == LMDEPLOY_WHY and "Backend: transformers" in engine.describe()
    assert "dtype float32: a CPU computes in float32" in engine.describe()  # the precision, and why
    assert engine.dtype == torch.float32


# ---- the transformers backend, end to end ---------------------------------------------------------
def test_single_prompt(engine):
    answers = engine.generate(("图中的菜是什么？", DUMPLINGS))
    assert len(answers) == 1 and isinstance(answers[0], str) and answers[0]
    assert engine.generate([("图中的菜是什么？", DUMPLINGS)]) == answers  # a list of one is a batch of one
    assert engine.chat("图中的菜是什么？", DUMPLINGS).response.text == answers[0]  # greedy: the same answer


def test_batch_gives_each_prompt_its_own_answer(engine, wide_image):
    prompts = [
        ("图中的菜是什么？", DUMPLINGS),
        ("What dish is this?", NOODLES),
        ("图中有几道菜？", wide_image),
        "hello",
    ]
    batch = engine.generate(prompts)
    assert batch == [engine.generate(prompt)[0] for prompt in prompts]  # left padding changes nothing
    responses = engine.respond(prompts)
    assert [r.text for r in responses] == batch and all(1 <= r.tokens <= GREEDY.max_new_tokens for r in responses)


def test_multi_turn_keeps_the_conversation(engine):
    session = engine.chat("图中的菜是什么？", DUMPLINGS)
    first = session.response.text
    session = engine.chat("它是哪里的菜？", session=session)
    assert [prompt for prompt, _ in session.history] == [("图中的菜是什么？", session.turns[0].image), "它是哪里的菜？"]
    assert session.history[0][1] == first and session.history[1][1] == session.response.text
    prompt = engine.prompt_text("再说一遍", session=session)
    assert prompt.count("<img>") == 1 and first in prompt and session.response.text in prompt
    session.clear()
    assert session.history == [] and session.response is None


def test_stream_joins_to_the_greedy_answer(engine):
    settings = GenerationSettings(max_new_tokens=40)
    counts = []
    for question, image in [("hello", None), ("图中的菜是什么？", DUMPLINGS)]:
        session = Session()
        pieces = list(engine.stream(question, image, session=session, settings=settings))
        assert "".join(pieces) == engine.chat(question, image, settings=settings).response.text
        assert session.response.text == "".join(pieces) and len(session.history) == 1
        counts.append(len(pieces))
    assert max(counts) > 1  # it really streams (the streamer cuts at spaces, newlines and CJK characters)


def test_a_stream_left_early_stops_generating_and_frees_the_model(engine):
    session = Session()
    stream = engine.stream("hello", session=session, settings=GenerationSettings(max_new_tokens=400))
    next(stream)
    stream.close()  # e.g. the browser tab was closed
    assert session.history == []  # an unfinished answer is not part of the conversation
    done = threading.Event()
    threading.Thread(target=lambda: (engine.generate("hello"), done.set()), daemon=True).start()
    assert done.wait(60), "the model lock was not released"


def test_prompt_is_the_tokenizers_chat_template_plus_image_tokens(engine, tiny, wide_image):
    """What an LMDeploy that renders the checkpoint tokenizer's chat_template builds: the image first as
    <img><IMG_CONTEXT></img>\\n, each <IMG_CONTEXT> then expanded to 256 tokens per tile."""
    model, tokenizer = tiny
    session = engine.chat("图中的菜是什么？", DUMPLINGS, max_tiles=6)
    answer = session.response.text
    prompt = engine.prompt_text("这几道呢？", wide_image, session=session, max_tiles=2)
    image = "<img><IMG_CONTEXT></img>\n"
    messages = [
        {"role": "user", "content": image + "图中的菜是什么？"},
        {"role": "assistant", "content": answer},
        {"role": "user", "content": image + "这几道呢？"},
    ]
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    tiles = [1, 3]  # one tile for the square dish; 3:1 at max 2 tiles -> a 2x1 grid + thumbnail
    pieces = rendered.split("<IMG_CONTEXT>")
    expected = pieces[0] + "".join("<IMG_CONTEXT>" * 256 * n + piece for n, piece in zip(tiles, pieces[1:]))
    assert prompt == expected
    assert tokenizer(prompt, add_special_tokens=False).input_ids == tokenizer(prompt[len("<s>") :]).input_ids


def test_prompt_is_what_the_remote_chat_code_builds(engine, tiny):
    model, _ = tiny
    query, _ = model._build_query("<image>\n图中的菜是什么？", [], [1])
    assert engine.prompt_text("图中的菜是什么？", DUMPLINGS) == "<s>" + query
    assert engine.prompt_text("hello") == "<s>" + model._build_query("hello", [], [])[0]


def test_bad_images_are_refused_before_generation(engine, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(ImageLoadError, match="broken.jpg"):
        engine.chat("图中的菜是什么？", broken)
    with pytest.raises(FileNotFoundError):
        engine.generate(("图中的菜是什么？", tmp_path / "missing.png"))


def test_a_conversation_longer_than_the_session_is_refused(tiny):
    model, tokenizer = tiny
    short = TransformersEngine(model, tokenizer, session_len=500, settings=GenerationSettings(max_new_tokens=8))
    session = short.chat("图中的菜是什么？", DUMPLINGS)  # about 300 tokens
    with pytest.raises(ContextTooLong, match="clear the context"):
        short.chat("这个呢？", NOODLES, session=session)  # two images do not fit in 500
    assert len(session.history) == 1


# ---- LMDeploy: the same prompt (LMDeploy's own rendering, runs on a CPU too) ------------------------
@pytest.mark.timeout(600)
def test_lmdeploy_builds_the_same_prompt(engine, tiny, tiny_path, tmp_path, wide_image):
    from course_lib.serving.lmdeploy_backend import render_prompts, renderer_status

    ok, why = renderer_status()
    if not ok:
        pytest.skip(why)
    _, tokenizer = tiny
    wide = tmp_path / "wide.png"
    wide_image.save(wide)
    session = engine.chat("图中的菜是什么？", DUMPLINGS)
    history = [{"question": "图中的菜是什么？", "image": str(DUMPLINGS), "answer": session.response.text}]
    cases = [
        dict(question="图中的菜是什么？", image=DUMPLINGS),
        dict(question="hello"),
        dict(question="这几道呢？", image=wide, max_tiles=2),
        dict(question="它是哪里的菜？", history=history),
        dict(question="这几道呢？", image=wide, history=history),
    ]
    for case, theirs in zip(cases, render_prompts(tiny_path, cases)):
        ours = engine.prompt_text(
            case["question"],
            case.get("image"),
            session=session if "history" in case else None,
            max_tiles=case.get("max_tiles"),
        )
        assert theirs["text"] == ours, case
        assert theirs["input_ids"] == tokenizer(ours, add_special_tokens=False).input_ids, case


@pytest.mark.timeout(600)
def test_lmdeploy_serves_an_internvl2_2b_shaped_checkpoint_the_prompt_its_chat_builds(internvl2_2b_shaped):
    """LMDeploy 0.18 renders the tokenizer's chat_template unless told otherwise. InternVL2-2B's (InternLM2-chat's)
    puts a newline after every <|im_end|> and no system line, while the checkpoint's own chat() (and XTuner's
    training) writes its system line and joins turns with <|im_end|> alone. The kit hands LMDeploy the
    checkpoint's own layout (checkpoints.chat_template_fields), so it serves the prompt chat() builds."""
    from course_lib.models import load_internvl
    from course_lib.serving.lmdeploy_backend import render_prompts, renderer_status
    from course_lib.tiny_internvl2.remote_code.conversation import INTERNVL2_SYSTEM_MESSAGE

    ok, why = renderer_status()
    if not ok:
        pytest.skip(why)
    model, tokenizer = load_internvl(internvl2_2b_shaped, "cpu", torch.float32)
    shaped = TransformersEngine(model, tokenizer, model_path=internvl2_2b_shaped, settings=GREEDY)
    assert model.system_message == INTERNVL2_SYSTEM_MESSAGE  # the checkpoint's default, as InternVL2-2B's
    earlier = Session()
    earlier.turns.append(make_turn("图中的菜是什么？", DUMPLINGS, None))
    earlier.turns[-1].answer = "饺子"
    history = [{"question": "图中的菜是什么？", "image": str(DUMPLINGS), "answer": "饺子"}]
    cases = [
        dict(question="图中的菜是什么？", image=DUMPLINGS),
        dict(question="hello"),
        dict(question="它是哪里的菜？", history=history),
    ]
    served = render_prompts(internvl2_2b_shaped, cases)
    default = render_prompts(internvl2_2b_shaped, cases, template="tokenizer")
    for case, theirs, tokenizers in zip(cases, served, default):
        ours = shaped.prompt_text(case["question"], case.get("image"), session=earlier if "history" in case else None)
        assert ours.startswith("<s><|im_start|>system\n" + INTERNVL2_SYSTEM_MESSAGE + "<|im_end|><|im_start|>user\n")
        assert theirs["text"] == ours, case
        assert theirs["input_ids"] == tokenizer(ours, add_special_tokens=False).input_ids, case
        # what LMDeploy would serve on its own: no system line, a newline after each <|im_end|>
        assert (
            tokenizers["text"].startswith("<s><|im_start|>user\n") and "<|im_end|>\n<|im_start|>" in tokenizers["text"]
        )
        assert tokenizers["text"] != ours


# ---- LMDeploy: the same pixels (its own InternVL preprocessing, runs on a CPU too) ------------------
@pytest.mark.timeout(600)
def test_lmdeploy_tiles_the_pictures_the_kit_hands_it_exactly_as_the_kit_does(tiny_path, tmp_path, wide_image):
    """The one image rule: every kit path (both engines, the OpenAI client, evaluation, the training-data check)
    reads a picture with tiling.open_rgb and hands that upright RGB image on. LMDeploy's own preprocessing of
    it gives bit-identical tiles; reading the raw file itself, LMDeploy would see other pixels (a plain
    convert("RGB"): no EXIF turn, the colour under transparency, 16-bit clipped), which is why it never does."""
    from course_lib.serving.lmdeploy_backend import lmdeploy_pixel_values, renderer_status
    from course_lib.tiling import load_image

    ok, why = renderer_status()
    if not ok:
        pytest.skip(why)
    pictures = awkward_pictures(tmp_path / "pictures")
    wide_image.save(tmp_path / "wide.png")
    pictures.update({"artwork.webp": DUMPLINGS, "wide.png": tmp_path / "wide.png"})
    cases = [
        dict(name=name, image=path, reading=reading)
        for name, path in pictures.items()
        for reading in ("kit", "lmdeploy")
    ]
    cases += [dict(name="wide.png", image=tmp_path / "wide.png", reading="kit", max_tiles=2)]
    tiles = lmdeploy_pixel_values(tiny_path, cases, tmp_path / "tiles.pt")
    assert len(tiles) == len(cases)
    raw_differs = {}
    for case, theirs in zip(cases, tiles):
        ours = load_image(case["image"], max_num=case.get("max_tiles") or 12)
        if case["reading"] == "kit":
            assert theirs.shape == ours.shape and torch.equal(theirs, ours), case
        else:
            raw_differs[case["name"]] = theirs.shape != ours.shape or not torch.equal(theirs, ours)
    assert raw_differs == {
        "plain.png": False,
        "phone.jpg": True,
        "cutout.png": True,
        "palette.png": True,
        "grey16.png": True,
        "artwork.webp": True,
        "wide.png": False,
    }
    assert (
        tiles[cases.index(dict(name="phone.jpg", image=pictures["phone.jpg"], reading="lmdeploy"))].shape[0] == 3
    )  # 2x1 + thumbnail
    assert load_image(pictures["phone.jpg"]).shape[0] == 3 and open_rgb(pictures["phone.jpg"]).size == (60, 120)
    assert tiles[-1].shape[0] == 3  # max_dynamic_patch=2 on the 3:1 picture: 2x1 + thumbnail


# ---- LMDeploy: the pipeline (GPU and the serving environment) ----------------------------------------
def _pipeline_python():
    """The Python that can run LMDeploy's pipeline (this one, or the serving environment's), or a skip reason."""
    from course_lib.config import cuda_available
    from course_lib.serving.serving_env import serving_python

    if LMDEPLOY_OK:
        return sys.executable, ""
    python = serving_python()
    if python is None:
        return None, LMDEPLOY_WHY + "; and there is no serving environment (.venv-serving) to run it in"
    if not cuda_available():
        return (
            None,
            f"the serving environment ({python}) is there, but torch sees no CUDA GPU and LMDeploy 0.18 runs only on "
            "GPUs",
        )
    return str(python), ""


@pytest.mark.timeout(900)
def test_lmdeploy_pipeline_end_to_end(tiny_path):
    python, why = _pipeline_python()
    if python is None:
        pytest.skip(why)
    done = subprocess.run(
        [
            python,
            "-m",
            "course_lib.serving.lmdeploy_backend",
            "check",
            str(tiny_path),
            "--image",
            str(DUMPLINGS),
            "--engine",
            "pytorch",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=800,
        env=dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1"),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert len(result["single"]) == 1 and isinstance(result["single"][0], str)
    assert len(result["batch"]) == 3 and result["batch"][0] == result["single"][0]  # greedy: batching changes nothing
    assert len(result["history"]) == 2 and result["last"] == result["history"][-1]
    assert "".join(result["stream"]) == result["single"][0]  # the stream joins to the same greedy answer
    from course_lib.precision import choose

    # what LMDeploy started, read from its pipeline after start-up, in the dtype chosen for this GPU
    assert result["engine"]["asked"] == result["engine"]["runs"] == "pytorch"
    assert result["engine"]["dtype"] == choose("cuda").name


def test_a_prompt_pair_in_either_order_and_a_missing_question():
    from course_lib.serving.engine import as_turns

    image = str(FOOD_IMAGES / "1f35c.webp")
    for pair in ((image, "图中的菜是什么？"), ("图中的菜是什么？", image)):
        (turn,), single = as_turns(pair)
        assert single and turn.question == "图中的菜是什么？" and turn.image is not None
    with pytest.raises(TypeError, match="needs its question as text"):
        as_turns((None, image))


def test_prompt_layouts_show_the_system_line_and_the_newlines(tiny, tiny_path):
    """Lesson 06's comparison: chat()'s layout (the kit's, XTuner's) and the tiny tokenizer's template agree;
    InternVL2-2B's tokenizer template drops the system line and adds a newline after <|im_end|>."""
    from course_lib.checkpoints import prompt_layouts

    _, tokenizer = tiny
    chat, own, real = prompt_layouts(tiny_path, tokenizer, "图中的菜是什么？").values()
    system = "<s><|im_start|>system\nYou are an AI assistant whose name is InternLM (书生·浦语).<|im_end|>"
    assert chat == own == system + "<|im_start|>user\n图中的菜是什么？<|im_end|><|im_start|>assistant\n"
    assert real == "<s><|im_start|>user\n图中的菜是什么？<|im_end|>\n<|im_start|>assistant\n"


def test_interactive_mode_reads_only_the_new_turn(engine):
    """Re-sending the conversation re-reads every earlier turn and its picture; a kept KV cache reads the new
    turn only. The counts add up exactly."""
    from course_lib.serving.kv_cache import tokens_per_turn

    costs = tokens_per_turn(engine, [("图中的菜是什么？", DUMPLINGS), ("它是哪里的菜？", None), ("好吃吗？", None)])
    first, second, third = costs
    assert first.new_tokens == first.prompt_tokens and first.image_tokens == 256 * 1
    assert second.image_tokens == third.image_tokens == 256  # the picture is read again every turn
    # what is kept: the whole previous prompt, its answer and the separator
    assert second.prompt_tokens - second.new_tokens >= first.prompt_tokens + 1
    assert third.prompt_tokens - third.new_tokens >= second.prompt_tokens + 1
    assert all(c.new_tokens < 40 for c in costs[1:])  # only the new question (and the answer before it)
