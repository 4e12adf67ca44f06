"""The transformers backend: InternVL2's own remote code (`model.chat`, `model.batch_chat`) behind the Engine API.

Runs the tiny checkpoint on the CPU and a real one on a GPU. Images are tiled with the checkpoint's
settings (`tiling_settings(model.config)`, max_dynamic_patch per image as in LMDeploy), prompts come from
the checkpoint's conversation template, and generation stops at the template's separator. Streaming runs
`model.chat` in a thread with a `TextIteratorStreamer`. One lock serialises the model: this backend
answers one request at a time (LMDeploy batches concurrent requests; this one queues them).
"""

import sys
import threading
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple

import torch
from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

from ..asking import ask, ask_each, image_question
from ..internvl_format import IMG_CONTEXT_TOKEN, expand_image_tags
from ..models import load_internvl
from ..tiling import image_to_pixel_values, lmdeploy_max_tiles, tiling_settings
from .engine import ContextTooLong, Engine, GenerationSettings, Response, Session, Turn, make_turn


class _StopWhenSet(StoppingCriteria):
    """Ends generation early when the reader of a stream goes away."""

    def __init__(self, event: threading.Event):
        self.event = event

    def __call__(self, input_ids, scores, **kwargs):
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


class TokenCounter(StoppingCriteria):
    """Never stops; remembers the generated ids (generation from inputs_embeds: input_ids hold only new tokens)."""

    def __init__(self):
        self.ids = None

    def __call__(self, input_ids, scores, **kwargs):
        self.ids = input_ids
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

    def counts(self, stop_id: int) -> List[int]:
        if self.ids is None:
            return []
        counts = []
        for row in self.ids.tolist():
            counts.append(row.index(stop_id) if stop_id in row else len(row))
        return counts


def model_question(turn: Turn) -> str:
    """The question as InternVL2's chat sees it: an image turn starts with the `<image>` placeholder."""
    return image_question(turn.question) if turn.image is not None else turn.question


class TransformersEngine(Engine):
    backend = "transformers"

    def __init__(
        self,
        model,
        tokenizer,
        model_path=None,
        settings: Optional[GenerationSettings] = None,
        max_tiles: Optional[int] = None,
        why: Sequence[str] = (),
        session_len: Optional[int] = None,
    ):
        super().__init__(model_path or getattr(model, "name_or_path", None), settings, max_tiles, why)
        self.model, self.tokenizer = model, tokenizer
        self.tiling = tiling_settings(model.config)
        # The conversation template module that ships with the checkpoint's remote code (tiny and real alike).
        self._get_conv_template = getattr(sys.modules[type(model).__module__], "get_conv_template")
        self.sep = self._get_conv_template(model.template).sep
        self.stop_id = tokenizer.convert_tokens_to_ids(self.sep.strip())
        self.session_len = session_len or model.config.llm_config.max_position_embeddings
        self.device = model.language_model.get_input_embeddings().weight.device
        self.dtype = next(model.vision_model.parameters()).dtype
        model.img_context_token_id = tokenizer.convert_tokens_to_ids(IMG_CONTEXT_TOKEN)
        self._adds_bos = tokenizer("").input_ids[:1] == [tokenizer.bos_token_id]
        self._lock = threading.RLock()

    @classmethod
    def load(cls, path, device: str = "cpu", dtype: Optional[torch.dtype] = None, **kwargs) -> "TransformersEngine":
        model, tokenizer = load_internvl(path, device, dtype)
        return cls(model, tokenizer, model_path=Path(path), **kwargs)

    # ---- prompt -------------------------------------------------------------------------------
    def _pixels(self, turns: Sequence[Turn]) -> Tuple[Optional[torch.Tensor], List[int]]:
        """Tiles of every image in these turns, in order, and the tile count of each."""
        tiles = []
        for turn in turns:
            if turn.image is None:
                continue
            max_num = lmdeploy_max_tiles(self.tiling["max_num"], turn.max_tiles)
            settings = dict(self.tiling, max_num=max_num, min_num=min(self.tiling["min_num"], max_num))
            tiles.append(image_to_pixel_values(turn.image, **settings))
        if not tiles:
            return None, []
        return torch.cat(tiles).to(device=self.device, dtype=self.dtype), [t.shape[0] for t in tiles]

    def _query(self, history: Sequence[Tuple[str, str]], question: str, num_patches: Sequence[int]) -> str:
        """The prompt exactly as InternVL2's chat builds it (conversation template, then image tokens)."""
        template = self._get_conv_template(self.model.template)
        template.system_message = self.model.system_message
        for old_question, old_answer in history:
            template.append_message(template.roles[0], old_question)
            template.append_message(template.roles[1], old_answer)
        template.append_message(template.roles[0], question)
        template.append_message(template.roles[1], None)
        return expand_image_tags(template.get_prompt(), num_patches, self.model.num_image_token)

    def _prepare(self, previous: Sequence[Turn], turn: Turn, settings: GenerationSettings):
        history = [(model_question(t), t.answer) for t in previous]
        pixel_values, num_patches = self._pixels(list(previous) + [turn])
        question = model_question(turn)
        query = self._query(history, question, num_patches)
        with self._lock:  # the fast tokenizer is not safe to call from several threads at once
            length = len(self.tokenizer(query).input_ids)
        if length >= self.session_len:
            raise ContextTooLong(
                f"the conversation is {length} tokens, over the session length of {self.session_len}: clear the "
                "context (start a new session), or use fewer tiles per image (max_tiles)"
            )
        config = settings.to_transformers()
        config["max_new_tokens"] = min(config["max_new_tokens"], self.session_len - length)
        return question, history, pixel_values, num_patches, config

    def prompt_text(
        self, question: str, image=None, session: Optional[Session] = None, max_tiles: Optional[int] = None
    ) -> str:
        turn = make_turn(question, image, max_tiles if max_tiles is not None else self.max_tiles)
        previous = session.turns if session is not None else []
        _, num_patches = self._pixels(list(previous) + [turn])
        query = self._query([(model_question(t), t.answer) for t in previous], model_question(turn), num_patches)
        return (self.tokenizer.bos_token if self._adds_bos else "") + query

    # ---- answers ------------------------------------------------------------------------------
    def _chat(self, prepared, extra: Optional[dict] = None) -> str:
        question, history, pixel_values, num_patches, config = prepared
        with self._lock:
            return ask(
                self.model, self.tokenizer, pixel_values, question, {**config, **(extra or {})}, history, num_patches
            )

    def _answer(self, session: Session, turn: Turn, settings: GenerationSettings) -> str:
        return self._chat(self._prepare(session.turns, turn, settings))

    def _answer_batch(self, turns: List[Turn], settings: GenerationSettings) -> List[Response]:
        answers: List[Optional[Response]] = [None] * len(turns)
        with_images = [i for i, turn in enumerate(turns) if turn.image is not None]
        if with_images:  # one left-padded batch through batch_chat
            prepared = [self._prepare([], turns[i], settings) for i in with_images]
            config = dict(prepared[0][4], max_new_tokens=min(p[4]["max_new_tokens"] for p in prepared))
            counter = TokenCounter()
            config["stopping_criteria"] = StoppingCriteriaList([counter])
            with self._lock:
                outputs = ask_each(
                    self.model, self.tokenizer, [p[2] for p in prepared], [p[0] for p in prepared], config
                )
            for i, text, tokens in zip(with_images, outputs, counter.counts(self.stop_id)):
                answers[i] = Response(text, tokens=tokens)
        for i, turn in enumerate(turns):  # text-only prompts (batch_chat wants one image per question)
            if answers[i] is None:
                counter = TokenCounter()
                text = self._chat(
                    self._prepare([], turn, settings), {"stopping_criteria": StoppingCriteriaList([counter])}
                )
                answers[i] = Response(text, tokens=counter.counts(self.stop_id)[0])
        return answers

    def _stream(self, session: Session, turn: Turn, settings: GenerationSettings) -> Iterator[str]:
        prepared = self._prepare(session.turns, turn, settings)  # errors (bad length) surface before streaming
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600)
        stop = threading.Event()
        outcome = {}

        def work():
            try:
                outcome["text"] = self._chat(
                    prepared, {"streamer": streamer, "stopping_criteria": StoppingCriteriaList([_StopWhenSet(stop)])}
                )
            except BaseException as error:  # handed to the reader below
                outcome["error"] = error
                streamer.end()

        worker = threading.Thread(target=work, name="transformers-stream", daemon=True)
        worker.start()
        raw, sent = "", ""
        try:
            for piece in streamer:
                raw += piece
                # chat() returns the text before the separator, stripped: hold back trailing whitespace
                visible = raw.split(self.sep)[0].strip()
                if len(visible) > len(sent) and visible.startswith(sent):
                    yield visible[len(sent) :]
                    sent = visible
        finally:
            stop.set()  # the reader stopped early (or we are done): end generation at the next token
            worker.join()
        if "error" in outcome:
            raise outcome["error"]
        final = outcome["text"]
        if not final.startswith(sent):
            raise RuntimeError(f"streamed text {sent!r} is not a prefix of the answer {final!r}")
        if final[len(sent) :]:
            yield final[len(sent) :]
