"""One serving API over two backends: LMDeploy (GPU only) and transformers (the InternVL2 remote code).

This module is what every backend builds on (Engine, GenerationSettings, Session, Turn, ...); it imports no
backend. Which backend serves is backends.make_engine's choice (also `course_lib.serving.make_engine`):

    engine = make_engine(setup)                       # LMDeploy if it imports and CUDA is there, else transformers
    engine.generate([("What dish is this?", image)])  # one or many (question, image) prompts -> answers
    session = engine.chat("What dish is this?", image)            # multi-turn: session.response.text,
    session = engine.chat("Where is it from?", session=session)   #             session.history
    for delta in engine.stream("Describe it.", image): ...        # text as it is generated

Both backends build the same prompt from the same question, image and settings (`engine.prompt_text`):
the checkpoint's chat template, the image first as `<img>` + `<IMG_CONTEXT>` x (256 x tiles) + `</img>\\n`,
both stop at the template's separator (`<|im_end|>`), and images are opened the same way (course_lib.tiling).
"""

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

from PIL import Image

from ..tiling import open_rgb

ImageLike = Union[str, Path, Image.Image]


class ContextTooLong(ValueError):
    """The conversation no longer fits the session length; start a new session (clear the context)."""


# ---- generation settings ------------------------------------------------------------------------
@dataclass(frozen=True)
class GenerationSettings:
    """The knobs of LMDeploy's GenerationConfig, with its names and defaults.

    Greedy decoding (do_sample=False) ignores temperature, top_p and top_k, and, as LMDeploy does, the
    repetition penalty too: both backends then pick the most likely token at every step.
    """

    max_new_tokens: int = 512
    do_sample: bool = False
    top_p: float = 1.0
    top_k: int = 50
    temperature: float = 0.8
    repetition_penalty: float = 1.0

    def __post_init__(self):
        problems = []
        if not (isinstance(self.max_new_tokens, int) and self.max_new_tokens >= 1):
            problems.append(f"max_new_tokens must be a positive integer, got {self.max_new_tokens!r}")
        if not 0 < self.top_p <= 1:
            problems.append(f"top_p must be in (0, 1], got {self.top_p}")
        if not (isinstance(self.top_k, int) and self.top_k >= 0):
            problems.append(f"top_k must be an integer >= 0 (0 = no limit), got {self.top_k!r}")
        if not 0 < self.temperature <= 2:
            problems.append(f"temperature must be in (0, 2], got {self.temperature}")
        if not self.repetition_penalty > 0:
            problems.append(f"repetition_penalty must be > 0 (1.0 = none), got {self.repetition_penalty}")
        if problems:
            raise ValueError("; ".join(problems))

    def replace(self, **changes) -> "GenerationSettings":
        return dataclasses.replace(self, **changes)

    def to_transformers(self) -> dict:
        """Keyword arguments for transformers' generate (and InternVL2's chat generation_config)."""
        config = {"max_new_tokens": self.max_new_tokens, "do_sample": self.do_sample}
        if self.do_sample:
            config.update(
                top_p=self.top_p,
                top_k=self.top_k,
                temperature=self.temperature,
                repetition_penalty=self.repetition_penalty,
            )
        return config

    def lmdeploy_kwargs(self, stop_words: Sequence[str] = ()) -> dict:
        """Keyword arguments for lmdeploy.GenerationConfig (LMDeploy itself turns do_sample=False into top_k=1)."""
        return dict(
            max_new_tokens=self.max_new_tokens,
            do_sample=self.do_sample,
            top_p=self.top_p,
            top_k=self.top_k,
            temperature=self.temperature,
            repetition_penalty=self.repetition_penalty,
            stop_words=list(stop_words) or None,
        )

    def to_lmdeploy(self, stop_words: Sequence[str] = ()):
        from lmdeploy import GenerationConfig

        return GenerationConfig(**self.lmdeploy_kwargs(stop_words))

    def to_openai(self, stop: Sequence[str] = ()) -> dict:
        """Keyword arguments for `client.chat.completions.create` against LMDeploy's api_server.

        The server always samples; greedy is asked for with top_k=1. top_k and repetition_penalty are
        LMDeploy extensions of the OpenAI API, so they travel in extra_body.
        """
        if self.do_sample:
            kwargs = dict(temperature=self.temperature, top_p=self.top_p)
            extra = dict(top_k=self.top_k, repetition_penalty=self.repetition_penalty)
        else:
            kwargs = dict(temperature=1.0, top_p=1.0)
            extra = dict(top_k=1, repetition_penalty=1.0)
        kwargs["max_completion_tokens"] = self.max_new_tokens
        if stop:
            kwargs["stop"] = list(stop)
        kwargs["extra_body"] = extra
        return kwargs


# ---- prompts, turns and sessions ----------------------------------------------------------------
@dataclass
class Turn:
    """One user turn: the question, its image (RGB, opened by course_lib.tiling) and that image's tile budget."""

    question: str
    image: Optional[Image.Image] = None
    max_tiles: Optional[int] = None  # LMDeploy's per-image max_dynamic_patch; None = the checkpoint's
    answer: Optional[str] = None

    @property
    def prompt(self):
        return self.question if self.image is None else (self.question, self.image)


@dataclass
class Response:
    text: str
    finish_reason: Optional[str] = None
    tokens: Optional[int] = None  # generated tokens of the answer (the stop token not counted)


@dataclass
class Session:
    """A conversation: `response.text` is the last answer, `history` the (prompt, answer) pairs so far.

    Like LMDeploy's Session: pass it back to `chat`/`stream` for the next turn. `turns` keeps the images
    (every turn re-sends the whole conversation, images included). `state` holds a backend's own session.
    """

    turns: List[Turn] = field(default_factory=list)
    response: Optional[Response] = None
    state: Any = None

    @property
    def history(self) -> List[Tuple[Any, str]]:
        return [(turn.prompt, turn.answer) for turn in self.turns]

    @property
    def images(self) -> List[Image.Image]:
        return [turn.image for turn in self.turns if turn.image is not None]

    def clear(self) -> None:
        """Forget the conversation (the demo's "clear context")."""
        self.turns.clear()
        self.response = None
        self.state = None


def open_image(image: Optional[ImageLike]) -> Optional[Image.Image]:
    """None, a path or a PIL image -> an upright RGB image (ImageLoadError / FileNotFoundError otherwise)."""
    return None if image is None else open_rgb(image)


def make_turn(question: str, image: Optional[ImageLike] = None, max_tiles: Optional[int] = None) -> Turn:
    if not isinstance(question, str):
        raise TypeError(f"the question must be a string, got {type(question).__name__}")
    if max_tiles is not None and not (isinstance(max_tiles, int) and max_tiles >= 1):
        raise ValueError(f"max_tiles must be a positive integer or None, got {max_tiles!r}")
    return Turn(question, open_image(image), max_tiles)


def as_turns(prompts, max_tiles: Optional[int] = None) -> Tuple[List[Turn], bool]:
    """A question, a (question, image) pair, or a list of them -> (turns, was_single)."""
    single = isinstance(prompts, (str, tuple))
    items = [prompts] if single else list(prompts)
    turns = []
    for item in items:
        if isinstance(item, str):
            turns.append(make_turn(item, None, max_tiles))
        elif isinstance(item, tuple) and len(item) == 2:
            question, image = item
            if (
                isinstance(image, str)
                and isinstance(question, str)
                and Path(question).is_file()
                and not Path(image).is_file()
            ):
                question, image = image, question  # (image file, question): LMDeploy also accepts this order
            elif question is not None and not isinstance(question, str):
                question, image = image, question  # (PIL image, question)
            if not isinstance(question, str):
                raise TypeError(f"a (question, image) prompt needs its question as text, got {item!r:.120}")
            turns.append(make_turn(question, image, max_tiles))
        else:
            raise TypeError(f"a prompt is a question or a (question, image) pair, got {item!r}")
    return turns, single


# ---- the common engine --------------------------------------------------------------------------
class Engine:
    """What both backends offer. Subclasses implement _answer, _answer_batch, _stream and prompt_text."""

    backend = ""

    def __init__(
        self,
        model_path,
        settings: Optional[GenerationSettings] = None,
        max_tiles: Optional[int] = None,
        why: Sequence[str] = (),
    ):
        self.model_path = Path(model_path) if model_path is not None else None
        self.settings = settings or GenerationSettings()
        self.max_tiles = max_tiles
        self.why = list(why)

    @property
    def label(self) -> str:
        name = self.model_path.name if self.model_path is not None else "model"
        return f"{name} ({self.backend})"

    def describe(self) -> str:
        lines = [f"Backend: {self.backend}", f"Model:   {self.model_path}", "Why:"]
        return "\n".join(lines + [f"  - {reason}" for reason in self.why])

    # -- public API ------------------------------------------------------------------------------
    def generate(
        self, prompts, settings: Optional[GenerationSettings] = None, max_tiles: Optional[int] = None
    ) -> List[str]:
        """Independent single-turn prompts (one, or a list for a batch) -> one answer each, in order."""
        return [response.text for response in self.respond(prompts, settings, max_tiles)]

    def respond(
        self, prompts, settings: Optional[GenerationSettings] = None, max_tiles: Optional[int] = None
    ) -> List[Response]:
        """Like generate, with each answer's token count (for benchmarks)."""
        turns, _ = as_turns(prompts, max_tiles if max_tiles is not None else self.max_tiles)
        if not turns:
            return []
        return self._answer_batch(turns, settings or self.settings)

    def chat(
        self,
        question: str,
        image: Optional[ImageLike] = None,
        session: Optional[Session] = None,
        settings: Optional[GenerationSettings] = None,
        max_tiles: Optional[int] = None,
    ) -> Session:
        """One turn of a conversation; returns the session (new if none was given) with the answer added."""
        session = session if session is not None else Session()
        turn = make_turn(question, image, max_tiles if max_tiles is not None else self.max_tiles)
        text = self._answer(session, turn, settings or self.settings)
        self._record(session, turn, text)
        return session

    def stream(
        self,
        question: str,
        image: Optional[ImageLike] = None,
        session: Optional[Session] = None,
        settings: Optional[GenerationSettings] = None,
        max_tiles: Optional[int] = None,
    ) -> Iterator[str]:
        """Yield the answer in pieces as it is generated; the session (if given) gets the turn at the end.

        The pieces join to exactly the text `chat` returns for the same greedy request.
        """
        session = session if session is not None else Session()
        turn = make_turn(question, image, max_tiles if max_tiles is not None else self.max_tiles)
        pieces = []
        for piece in self._stream(session, turn, settings or self.settings):
            if piece:
                pieces.append(piece)
                yield piece
        self._record(session, turn, "".join(pieces))

    def prompt_text(
        self,
        question: str,
        image: Optional[ImageLike] = None,
        session: Optional[Session] = None,
        max_tiles: Optional[int] = None,
    ) -> str:
        """The exact text the language model reads for this turn (BOS and image tokens written out)."""
        raise NotImplementedError

    def close(self) -> None:
        """Free what the backend holds (GPU memory, threads)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- for subclasses -------------------------------------------------------------------------
    @staticmethod
    def _record(session: Session, turn: Turn, text: str) -> None:
        turn.answer = text
        session.turns.append(turn)
        session.response = Response(text)

    def _answer(self, session: Session, turn: Turn, settings: GenerationSettings) -> str:
        raise NotImplementedError

    def _answer_batch(self, turns: List[Turn], settings: GenerationSettings) -> List[Response]:
        raise NotImplementedError

    def _stream(self, session: Session, turn: Turn, settings: GenerationSettings) -> Iterable[str]:
        raise NotImplementedError
