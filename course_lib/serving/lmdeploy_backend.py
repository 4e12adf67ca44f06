"""The LMDeploy backend (GPU only): a thin layer over `lmdeploy.pipeline`.

    pipe = pipeline(path, backend_config=TurbomindEngineConfig(session_len=8192, cache_max_entry_count=0.8, tp=1),
                    chat_template_config=ChatTemplateConfig(**chat_template_fields(path)), trust_remote_code=True)
    pipe(messages, gen_config=GenerationConfig(...))        # one request; a list of them is a batch
    session = pipe.chat(messages, session=session)           # multi-turn: session.response.text, session.history
    pipe.chat(messages, session=session, stream_response=True)  # streaming deltas

Requests are OpenAI-style messages with the image FIRST, so LMDeploy renders `<img><IMG_CONTEXT></img>\\n`
before the question, exactly where InternVL2's own chat puts `<image>\\n` (a `(question, image)` tuple would
put the image after the question). Images are PIL images opened by course_lib.tiling, with their tile
budget as `max_dynamic_patch`. The chat template is the checkpoint's own conversation (chat_template_fields),
so LMDeploy serves the prompt the model was trained and evaluated with, and stops at its separator.

`lmdeploy` is imported only inside functions: this module imports anywhere, and `prompt_text` (chat
template + image tokens, as LMDeploy 0.18 renders them) works on a CPU too.

    python -m course_lib.serving.lmdeploy_backend prompt MODEL_PATH --question Q [--image PATH] [--max-tiles N]
prints that prompt as JSON (`prompts MODEL_PATH` does a JSON list of cases from stdin; `pixels MODEL_PATH --out F`
saves LMDeploy's own tiles of a list of pictures); the tests run them with the serving environment's Python.

Which engine runs is LMDeploy's decision, not the kit's: asked for TurboMind, LMDeploy 0.18 falls back to its
PyTorch engine when TurboMind's library does not load or does not know the architecture, saying so in one
warning (lmdeploy/archs.py autoget_backend). `plan_engine` asks LMDeploy that question before anything loads (no
GPU needed), refuses AWQ weights the engine that would run cannot load (`awq_refusal`), picks the dtype for the
GPU (course_lib.precision.choose) and re-emits LMDeploy's warnings as `LMDeployWarning`s; after start-up,
`running_engine` reads the engine LMDeploy started, which is what `LMDeployEngine.engine` and its label name.
"""

import argparse
import asyncio
import contextlib
import json
import logging
import os
import subprocess
import sys
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator, List, Optional, Sequence, Tuple

from ..checkpoints import chat_template_fields
from ..config import REPO_ROOT
from ..internvl_format import IMG_CONTEXT_TOKEN
from ..precision import Precision, choose
from ..tiling import open_rgb
from .engine import Engine, GenerationSettings, Response, Session, Turn, make_turn
from .serving_env import ServingPythonError, lmdeploy_importable, serving_python

IMAGE_TOKEN = IMG_CONTEXT_TOKEN  # LMDeploy puts one per image in the prompt, then expands it
ENGINES = ("turbomind", "pytorch")
# TurbomindEngineConfig.dtype and PytorchEngineConfig.dtype (lmdeploy/messages.py, their __post_init__)
DTYPES = ("auto", "float16", "bfloat16")


class LMDeployWarning(UserWarning):
    """A warning LMDeploy logged while the kit decided or started an engine (such as its fall-back from TurboMind
    to the PyTorch engine), re-emitted as a Python warning so a notebook shows it."""


class CannotServe(ValueError):
    """The engine that would run cannot serve this checkpoint as asked; the message says why and what to do."""


def chat_template_config(model_path):
    from lmdeploy import ChatTemplateConfig

    return ChatTemplateConfig(**chat_template_fields(model_path))


def stop_words_for(model_path) -> List[str]:
    return chat_template_fields(model_path)["stop_words"]


def user_content(turn: Turn) -> list:
    """One user turn as OpenAI-style content: the image (with its tile budget) first, then the question."""
    content = []
    if turn.image is not None:
        image = {"data": turn.image}
        if turn.max_tiles is not None:
            image["max_dynamic_patch"] = turn.max_tiles
        content.append({"type": "image_data", "image_data": image})
    content.append({"type": "text", "text": turn.question})
    return content


def turn_messages(turn: Turn) -> List[dict]:
    return [{"role": "user", "content": user_content(turn)}]


def conversation_messages(previous: Sequence[Turn], turn: Turn) -> List[dict]:
    """The whole conversation as LMDeploy's pipe.chat sends it: every earlier turn, then this one."""
    messages = []
    for old in previous:
        messages += turn_messages(old) + [{"role": "assistant", "content": old.answer}]
    return messages + turn_messages(turn)


def engine_config(
    engine: str = "turbomind",
    session_len: int = 8192,
    cache_max_entry_count: float = 0.8,
    tp: int = 1,
    quant_policy: int = 0,
    dtype: str = "auto",
    model_format: Optional[str] = None,
):
    """TurbomindEngineConfig or PytorchEngineConfig with the knobs the course explains. dtype: "auto" (LMDeploy
    reads the checkpoint's), "float16" or "bfloat16"; the kit passes precision.choose's for the GPU (plan_engine)."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES} (LMDeploy's engine configs), got {dtype!r}")
    from lmdeploy import PytorchEngineConfig, TurbomindEngineConfig

    config_class = TurbomindEngineConfig if engine == "turbomind" else PytorchEngineConfig
    options = dict(
        session_len=session_len, cache_max_entry_count=cache_max_entry_count, tp=tp, quant_policy=quant_policy
    )
    if model_format is not None:
        options["model_format"] = model_format
    return config_class(dtype=dtype, **options)


# ---- AWQ: which engine can load 4-bit weights (decided from LMDeploy 0.18's source; no GPU needed) ---------------
AWQ_GROUP_SIZE = 128  # the only AWQ group size TurboMind 0.18 accepts (lmdeploy/turbomind/converter.py)


def _first(node, key: str):
    """The value of the first `key` met walking a JSON tree depth-first in file order, as LMDeploy searches a
    model config (lmdeploy/archs.py search_nested_config); None if there is none."""
    if isinstance(node, dict):
        items = list(node.items())
    elif isinstance(node, list):
        items = [(None, item) for item in node]
    else:
        return None
    for name, value in items:
        if name == key:
            return value
        found = _first(value, key)
        if found is not None:
            return found
    return None


def _config_json(model_path) -> dict:
    """config.json of a checkpoint folder; {} for a name that is no folder here (LMDeploy would fetch it from the
    Hugging Face hub, and judges it itself)."""
    if not Path(model_path).is_dir():
        return {}
    path = Path(model_path) / "config.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise FileNotFoundError(f"{path} is missing: point the engine at a checkpoint folder") from error


def quantization_config(model_path) -> dict:
    """The checkpoint's quantization_config ({} for plain weights), where LMDeploy's TurboMind looks for it: the
    first one in config.json, the language model's llm_config included (turbomind/converter.py get_tm_config)."""
    return _first(_config_json(model_path), "quantization_config") or {}


def awq_refusal(model_path, engine: str, model_format: Optional[str] = None) -> Optional[str]:
    """Why LMDeploy 0.18's `engine` cannot serve this checkpoint's weights as asked, what to do instead; None if
    it can. Only AWQ (4-bit W4A16) is judged. Both engines load AWQ checkpoints in 0.18: TurboMind reads
    quantization_config wherever it is (turbomind/converter.py get_tm_config), the PyTorch engine builds AwqLinear
    layers with its Triton W4A16 kernel (pytorch/nn/linear/__init__.py, pytorch/kernels/cuda/awq_kernels.py). What
    they refuse, or would load wrongly, is judged here before anything starts."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    config_path, config = Path(model_path) / "config.json", _config_json(model_path)
    quant = _first(config, "quantization_config") or {}
    method = quant.get("quant_method")
    if model_format == "awq" and method != "awq":
        # TurboMind would read plain weights as 4-bit ones; the PyTorch engine only quantises to fp8 on the fly and
        # raises "Unsupported weight quantization method: awq" (pytorch/config.py _patch_quantization_config).
        return (
            f"model_format='awq' was asked for, but {config_path} has no AWQ quantization_config (its weights are "
            f"{method or 'not quantised'}): quantise the model first (`lmdeploy lite auto_awq {model_path} "
            f"--work-dir {Path(model_path).name}-awq`) and serve that folder, or leave model_format unset to serve "
            "these weights as they are"
        )
    if method != "awq":
        return None
    if engine == "turbomind" and model_format not in (None, "awq"):
        # TurboMind asserts they match (turbomind/converter.py get_tm_config); the PyTorch engine ignores
        # model_format for a quantised checkpoint (pytorch/config.py _patch_quantization_config).
        return (
            f"{config_path} says quant_method 'awq' but model_format={model_format!r} was asked for: leave "
            "model_format unset (LMDeploy reads it from the checkpoint) or pass 'awq'"
        )
    if engine == "turbomind":  # turbomind/converter.py get_tm_config and _SUPPORTED_GROUP_SIZES
        version, group_size = quant.get("version"), int(quant.get("group_size") or AWQ_GROUP_SIZE)
        if version != "gemm" or group_size != AWQ_GROUP_SIZE:
            return (
                f"{config_path} holds AWQ weights with version={version!r}, group_size={group_size}, and LMDeploy "
                f"0.18's TurboMind loads only version 'gemm' with group size {AWQ_GROUP_SIZE}: quantise again with "
                "`lmdeploy lite auto_awq` (it writes that layout), or serve the unquantised model"
            )
    llm_quant = (config.get("llm_config") or {}).get("quantization_config") or {}
    if engine == "pytorch" and "llm_config" in config and llm_quant.get("quant_method") != "awq":
        # The PyTorch engine builds InternVL's language model from llm_config (pytorch/models/internvl.py) and each
        # layer reads quantization_config there (pytorch/models/internlm2.py): outside it, the layers are built
        # unquantised and the 4-bit tensors (qweight, qzeros, scales) have nowhere to load.
        return (
            f"{config_path} puts the AWQ quantization_config outside llm_config, where LMDeploy 0.18's PyTorch engine "
            "does not look for it: serve it with TurboMind (engine='turbomind'), or quantise with `lmdeploy lite "
            "auto_awq` (it writes quantization_config into llm_config), or serve the unquantised model"
        )
    return None


def check_awq(model_path, engine: str, model_format: Optional[str] = None) -> None:
    """CannotServe with awq_refusal's reason, before anything loads."""
    problem = awq_refusal(model_path, engine, model_format)
    if problem:
        raise CannotServe(f"LMDeploy's {engine} engine cannot serve {model_path}: {problem}")


# ---- which engine runs: LMDeploy's own decision, asked before start-up, and read after it -----------------------
@contextlib.contextmanager
def lmdeploy_warnings():
    """Collect the warnings LMDeploy's logger ("lmdeploy", lmdeploy/utils.py get_logger) writes inside the block
    (a list of messages), and re-emit each as an LMDeployWarning on the way out, also when the block fails. The
    fall-back from TurboMind to the PyTorch engine is one such line (lmdeploy/archs.py autoget_backend)."""
    said: List[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            said.append(record.getMessage())

    logger, handler = logging.getLogger("lmdeploy"), Collect(logging.WARNING)
    if logger.getEffectiveLevel() > logging.WARNING:
        logger.setLevel(logging.WARNING)  # and it stays there: the kit never hides LMDeploy's warnings again
    logger.addHandler(handler)
    try:
        yield said
    finally:
        logger.removeHandler(handler)
        for message in said:
            warnings.warn(f"LMDeploy: {message}", LMDeployWarning, stacklevel=3)


@dataclass(frozen=True)
class EnginePlan:
    """What LMDeploy will start for a request: the engine asked for, the one that runs, that engine's config
    (LMDeploy's own, dtype set) and the precision chosen for the GPU, with what LMDeploy warned on the way."""

    asked: str
    runs: str
    config: Any
    precision: Precision
    warnings: Tuple[str, ...] = ()

    def reasons(self) -> List[str]:
        if self.runs == self.asked:
            engine = f"LMDeploy runs its {self.runs} engine, as asked"
        else:
            engine = f"LMDeploy runs its {self.runs} engine, not the {self.asked} asked for: " + " ".join(self.warnings)
        return [engine, f"dtype {self.precision.name}: {self.precision.reason}"]


def plan_engine(
    model_path,
    engine: str = "turbomind",
    session_len: int = 8192,
    cache_max_entry_count: float = 0.8,
    tp: int = 1,
    quant_policy: int = 0,
    bf16: Optional[bool] = None,
    model_format: Optional[str] = None,
    gpu: Optional[str] = None,
) -> EnginePlan:
    """Which engine LMDeploy will start for this checkpoint, and with which config; runs without a GPU.

    The answer is LMDeploy's own: lmdeploy/archs.py autoget_backend_config, the function lmdeploy/pipeline.py
    Pipeline.__init__ calls (TurboMind if its library loads, lmdeploy/turbomind/__init__.py is_available, and
    lmdeploy/turbomind/supported_models.py is_supported knows the architecture; else PyTorch, with one warning).
    AWQ weights that engine cannot load are refused first (check_awq). bf16: whether the GPU computes in
    bfloat16 (None asks it): the dtype is course_lib.precision.choose's, explicit rather than LMDeploy's "auto".
    """
    check_awq(model_path, engine, model_format)
    precision = choose("cuda", bf16, gpu)
    config = engine_config(engine, session_len, cache_max_entry_count, tp, quant_policy, precision.name, model_format)
    from lmdeploy.archs import autoget_backend_config

    with lmdeploy_warnings() as said:
        runs, config = autoget_backend_config(str(model_path), config, trust_remote_code=True)
    if runs != engine:
        problem = awq_refusal(model_path, runs, model_format)
        if problem:
            raise CannotServe(
                f"LMDeploy would run its {runs} engine instead of {engine} ({' '.join(said)}), which cannot serve "
                f"{model_path}: {problem}"
            )
    return EnginePlan(engine, runs, config, precision, tuple(said))


ENGINE_OF_CONFIG = {"TurbomindEngineConfig": "turbomind", "PytorchEngineConfig": "pytorch"}


def running_engine(pipe) -> str:
    """The engine a started LMDeploy pipeline runs, as LMDeploy records it: lmdeploy/pipeline.py Pipeline.__init__
    hands the backend autoget_backend_config chose to its async engine, which keeps it as `backend`
    (lmdeploy/serve/core/async_engine.py AsyncEngine.__init__); `pipe.backend_config` is that engine's config."""
    backend = getattr(getattr(pipe, "async_engine", None), "backend", None)
    if backend in ENGINES:
        return backend
    config = type(getattr(pipe, "backend_config", None)).__name__
    if config in ENGINE_OF_CONFIG:
        return ENGINE_OF_CONFIG[config]
    raise RuntimeError(
        f"cannot tell which engine this LMDeploy pipeline runs (async_engine.backend={backend!r}, backend_config "
        f"is a {config}): the kit reads LMDeploy 0.18's attributes; rebuild the serving environment "
        "(`make serving-env`, requirements/serving.lock)"
    )


class LMDeployEngine(Engine):
    backend = "lmdeploy"

    def __init__(
        self,
        model_path,
        engine: str = "turbomind",
        session_len: int = 8192,
        cache_max_entry_count: float = 0.8,
        tp: int = 1,
        quant_policy: int = 0,
        settings: Optional[GenerationSettings] = None,
        max_tiles: Optional[int] = None,
        why: Sequence[str] = (),
        bf16: Optional[bool] = None,
        model_format: Optional[str] = None,
    ):
        """engine: the one asked for; LMDeploy may run another (plan_engine), and `self.engine` is the one that
        runs. bf16: whether the GPU computes in bfloat16 (None asks it). model_format: LMDeploy's ("awq", ...)."""
        super().__init__(model_path, settings, max_tiles, why)
        from lmdeploy import pipeline

        self.asked = engine
        self.plan = plan_engine(
            model_path, engine, session_len, cache_max_entry_count, tp, quant_policy, bf16, model_format
        )
        self.precision = self.plan.precision
        self.stop_words = stop_words_for(model_path)
        with lmdeploy_warnings():  # log_level WARNING: LMDeploy's warnings reach the student, not "ERROR" only
            self.pipe = pipeline(
                str(model_path),
                backend_config=self.plan.config,
                chat_template_config=chat_template_config(model_path),
                trust_remote_code=True,
                log_level="WARNING",
            )
        self.engine = running_engine(self.pipe)
        self.why += self.plan.reasons()
        if self.engine != self.plan.runs:  # not expected: the pipeline decides with the same function
            self.why.append(f"LMDeploy started its {self.engine} engine, though it had chosen {self.plan.runs}")

    @property
    def label(self) -> str:
        fell_back = f", not the {self.asked} asked for" if self.engine != self.asked else ""
        return f"{self.model_path.name} (lmdeploy/{self.engine}{fell_back})"

    def _config(self, settings: GenerationSettings):
        return settings.to_lmdeploy(self.stop_words)

    @staticmethod
    def _text(response) -> str:
        if getattr(response, "finish_reason", None) == "error":
            raise RuntimeError(
                f"LMDeploy could not answer: {getattr(response, 'error_message', None) or response.text}"
            )
        return response.text

    def _lmdeploy_session(self, session: Session):
        """LMDeploy's own session for ours (kept in session.state), with the conversation so far."""
        if session.state is None:
            session.state = self.pipe.session()
            session.state.history = [(turn_messages(old), old.answer) for old in session.turns]
        return session.state

    def _answer(self, session: Session, turn: Turn, settings: GenerationSettings) -> str:
        state = self.pipe.chat(
            turn_messages(turn), session=self._lmdeploy_session(session), gen_config=self._config(settings)
        )
        return self._text(state.response)

    def _answer_batch(self, turns: List[Turn], settings: GenerationSettings) -> List[Response]:
        responses = self.pipe([turn_messages(turn) for turn in turns], gen_config=self._config(settings))
        return [Response(self._text(r), r.finish_reason, r.generate_token_len) for r in responses]

    def _stream(self, session: Session, turn: Turn, settings: GenerationSettings) -> Iterator[str]:
        for delta in self.pipe.chat(
            turn_messages(turn),
            session=self._lmdeploy_session(session),
            gen_config=self._config(settings),
            stream_response=True,
        ):
            yield self._text(delta)

    def prompt_text(
        self, question: str, image=None, session: Optional[Session] = None, max_tiles: Optional[int] = None
    ) -> str:
        turn = make_turn(question, image, max_tiles if max_tiles is not None else self.max_tiles)
        return prompt_text(self.model_path, session.turns if session is not None else [], turn)["text"]

    def close(self) -> None:
        self.pipe.close()


# ---- LMDeploy's own prompt rendering (works without a GPU) ----------------------------------------
TEMPLATES = ("checkpoint", "tokenizer")


@lru_cache(maxsize=4)
def _renderer(model_path: str, template: str = "checkpoint"):
    """LMDeploy's chat template, tokenizer and InternVL preprocessing for a checkpoint. template="checkpoint"
    is what the kit serves with (chat_template_fields); "tokenizer" is LMDeploy's default, the tokenizer's own."""
    from lmdeploy.model import get_chat_template
    from lmdeploy.tokenizer import Tokenizer
    from lmdeploy.vl.model.builder import load_vl_model

    if template not in TEMPLATES:
        raise ValueError(f"template must be one of {TEMPLATES}, got {template!r}")
    config = chat_template_config(model_path) if template == "checkpoint" else None
    chat_template = get_chat_template(model_path, config, trust_remote_code=True)
    vision = load_vl_model(model_path, backend="pytorch", trust_remote_code=True)  # preprocessing only
    return chat_template, Tokenizer(model_path), vision


def prompt_text(model_path, previous: Sequence[Turn], turn: Turn, template: str = "checkpoint") -> dict:
    """{"text", "input_ids"}: the prompt LMDeploy 0.18 builds for this conversation, image tokens written out.

    The same steps as its PyTorch engine: parse the messages, preprocess the images (tiles), render the
    checkpoint tokenizer's chat template with one `<IMG_CONTEXT>` per image, then expand each to the image's
    token count. (BOS: the template writes it and LMDeploy drops the tokenizer's duplicate.)
    """
    from lmdeploy.serve.processors import MultimodalProcessor

    chat_template, tokenizer, vision = _renderer(str(model_path), template)
    messages = conversation_messages(previous, turn)
    parsed = asyncio.run(MultimodalProcessor.async_parse_multimodal_item(messages))
    prepared = vision.to_pytorch(vision.preprocess(parsed), chat_template, tokenizer)
    pieces = prepared["prompt"].split(IMAGE_TOKEN)
    text = pieces[0]
    for image, piece in zip(prepared["multimodal"], pieces[1:]):
        text += IMAGE_TOKEN * image["image_tokens"] + piece
    return {"text": text, "input_ids": [int(i) for i in prepared["input_ids"]]}


def renderer_status() -> Tuple[bool, str]:
    """(can LMDeploy's own prompt rendering run: in this Python, or in the serving environment's?, why not)."""
    if lmdeploy_importable():
        return True, "lmdeploy imports in this Python"
    try:
        python = serving_python()
    except ServingPythonError as error:
        return False, str(error)
    if python is None:
        return False, "no serving environment here to run it in (`make serving-env`)"
    probe = subprocess.run([str(python), "-c", "import lmdeploy"], capture_output=True, text=True, timeout=300)
    if probe.returncode != 0:
        return False, f"{python} cannot import lmdeploy ({(probe.stderr.strip().splitlines() or ['?'])[-1]})"
    return True, f"lmdeploy imports in the serving environment ({python})"


def _in_serving_env(arguments: Sequence[str], cases: Sequence[dict]) -> str:
    """Run `python -m course_lib.serving.lmdeploy_backend ARGUMENTS` with the serving environment's Python,
    the cases as JSON on stdin; its stdout, or a RuntimeError with the end of its stderr."""
    command = [str(serving_python()), "-m", "course_lib.serving.lmdeploy_backend", *arguments]
    done = subprocess.run(
        command,
        input=json.dumps(cases),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1"),
    )
    if done.returncode != 0:
        raise RuntimeError(f"LMDeploy's {arguments[0]} failed in the serving environment:\n{done.stderr[-3000:]}")
    return done.stdout


def _with_paths(cases: Sequence[dict]) -> List[dict]:
    return [
        {key: str(value) if key == "image" and value is not None else value for key, value in case.items()}
        for case in cases
    ]


def render_prompts(model_path, cases: Sequence[dict], template: str = "checkpoint") -> List[dict]:
    """LMDeploy's prompts ({"text", "input_ids"}) for cases {"question", "image": path, "max_tiles", "history"}:
    in this Python if lmdeploy imports, else with the serving environment's Python (see renderer_status).
    template: "checkpoint" (what the kit serves with) or "tokenizer" (LMDeploy's default)."""
    cases = _with_paths(cases)
    if lmdeploy_importable():
        return [prompt_text(model_path, *_case(case), template) for case in cases]
    return json.loads(_in_serving_env(["prompts", str(model_path), "--template", template], cases))


# ---- LMDeploy's own image preprocessing (works without a GPU) -------------------------------------
READINGS = ("kit", "lmdeploy")


def pixel_values(model_path, image, max_tiles: Optional[int] = None):
    """LMDeploy 0.18's InternVL preprocessing of one PIL image: its tiles as (tiles, 3, 448, 448) float32."""
    from lmdeploy.serve.processors import MultimodalProcessor

    _, _, vision = _renderer(str(model_path))
    messages = turn_messages(Turn("?", image, max_tiles))
    parsed = asyncio.run(MultimodalProcessor.async_parse_multimodal_item(messages))
    (item,) = vision.preprocess(parsed)[-1]["content"]
    return item["pixel_values"].float()


def read_picture(path, reading: str):
    """A picture file as a backend reads it: "kit" is course_lib.tiling.open_rgb (what every kit path hands
    LMDeploy); "lmdeploy" is LMDeploy's own file reading (lmdeploy.vl.load_image: a plain convert("RGB"))."""
    if reading not in READINGS:
        raise ValueError(f"reading must be one of {READINGS}, got {reading!r}")
    if reading == "kit":
        return open_rgb(path)
    from lmdeploy.vl import load_image

    return load_image(str(path))


def lmdeploy_pixel_values(model_path, cases: Sequence[dict], out: Path) -> List:
    """LMDeploy's tiles for cases {"image": path, "reading": "kit" | "lmdeploy", "max_tiles"}, computed with
    the serving environment's Python and handed back through the file `out` (torch.save)."""
    import torch

    _in_serving_env(["pixels", str(model_path), "--out", str(out)], _with_paths(cases))
    return torch.load(out)


def _check(model_path, image, engine: str, max_new_tokens: int) -> dict:
    settings = GenerationSettings(max_new_tokens=max_new_tokens)
    with LMDeployEngine(
        model_path, engine=engine, session_len=4096, cache_max_entry_count=0.2, settings=settings
    ) as lmd:
        question = "图中的菜是什么？"
        engine = {"asked": lmd.asked, "runs": lmd.engine, "dtype": lmd.precision.name, "label": lmd.label}
        session = lmd.chat(question, image)
        session = lmd.chat("它是哪里的菜？", session=session)
        return {
            "single": lmd.generate((question, image)),
            "batch": lmd.generate([(question, image), ("What dish is this?", image), "hello"]),
            "history": [answer for _, answer in session.history],
            "last": session.response.text,
            "stream": list(lmd.stream(question, image)),
            "engine": engine,
        }


def _case(case: dict) -> Tuple[List[Turn], Turn]:
    previous = []
    for old in case.get("history", []):
        previous.append(make_turn(old["question"], old.get("image"), old.get("max_tiles")))
        previous[-1].answer = old["answer"]
    return previous, make_turn(case["question"], case.get("image"), case.get("max_tiles"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.serving.lmdeploy_backend")
    commands = parser.add_subparsers(dest="command", required=True)
    prompt = commands.add_parser("prompt", help="print LMDeploy's prompt for a question (and image) as JSON")
    prompt.add_argument("model_path", type=Path)
    prompt.add_argument("--question", required=True)
    prompt.add_argument("--image", type=Path)
    prompt.add_argument("--max-tiles", type=int)
    prompt.add_argument(
        "--history",
        default="[]",
        help='earlier turns as JSON: [{"question": ..., "image": PATH or null, "answer": ...}]',
    )
    prompts = commands.add_parser("prompts", help="the same for a JSON list of such cases read from stdin")
    prompts.add_argument("model_path", type=Path)
    for command in (prompt, prompts):
        command.add_argument(
            "--template",
            choices=TEMPLATES,
            default="checkpoint",
            help="checkpoint: the checkpoint's own chat() layout, as the kit serves; "
            "tokenizer: the tokenizer's chat_template, LMDeploy's default",
        )
    pixels = commands.add_parser(
        "pixels",
        help="LMDeploy's tiles for a JSON list of pictures read from stdin "
        '([{"image": PATH, "reading": "kit" or "lmdeploy", "max_tiles": N}]), saved with torch.save',
    )
    pixels.add_argument("model_path", type=Path)
    pixels.add_argument("--out", type=Path, required=True)
    check = commands.add_parser("check", help="(GPU) one answer, a batch, two turns and a stream, as JSON")
    check.add_argument("model_path", type=Path)
    check.add_argument("--image", type=Path, required=True)
    check.add_argument("--engine", default="pytorch", choices=ENGINES)
    check.add_argument("--max-new-tokens", type=int, default=24)
    args = parser.parse_args(argv)
    if args.command == "check":
        real_stdout = sys.stdout
        with contextlib.redirect_stdout(sys.stderr):
            result = _check(args.model_path, args.image, args.engine, args.max_new_tokens)
        json.dump(result, real_stdout, ensure_ascii=False)
        return 0
    if args.command == "pixels":
        import torch

        with contextlib.redirect_stdout(sys.stderr):
            tiles = [
                pixel_values(
                    args.model_path, read_picture(case["image"], case.get("reading", "kit")), case.get("max_tiles")
                )
                for case in json.load(sys.stdin)
            ]
        torch.save(tiles, args.out)
        return 0
    if args.command == "prompt":
        cases = [
            dict(question=args.question, image=args.image, max_tiles=args.max_tiles, history=json.loads(args.history))
        ]
    else:
        cases = json.load(sys.stdin)
    real_stdout = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):  # LMDeploy logs to stdout: keep stdout for the JSON
        results = [prompt_text(args.model_path, *_case(case), args.template) for case in cases]
    json.dump(results[0] if args.command == "prompt" else results, real_stdout, ensure_ascii=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
