"""Run a checkpoint on evaluation records: answer every question (through course_lib.asking), score the answers,
and keep each result under a hash of what decides it, so asking again reads it back."""

import hashlib
import json
import os
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from tqdm.auto import tqdm

from .. import asking, probe_scores
from ..i18n import tr
from . import parsing, results
from .results import EvalResult, score

DEFAULT_GENERATION = asking.GREEDY
# What decides a stored result besides the checkpoint and the records: the asking, the parsing and the scoring.
_SCORING_CODE = [Path(m.__file__) for m in (asking, parsing, probe_scores, results)] + [Path(__file__)]


def predict(
    model,
    tokenizer,
    records: Sequence[dict],
    dataset_root,
    generation_config: Optional[dict] = None,
    batch_size: int = 8,
    progress: bool = True,
) -> List[str]:
    """The model's answer to each record (one image per question), batch_size questions at a time.

    Images are tiled as the checkpoint's config says. Greedy decoding and max_new_tokens=24 unless
    generation_config says otherwise (a config without do_sample stays greedy).
    """
    root = Path(dataset_root)
    missing = [r["image"] for r in records if not (root / r["image"]).is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} images are missing under {root}, e.g. {missing[:3]}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    answers: List[str] = []
    with tqdm(total=len(records), desc=tr("answering"), unit=tr("question"), disable=not progress) as bar:
        for start in range(0, len(records), batch_size):
            batch = records[start : start + batch_size]
            images = [root / r["image"] for r in batch]
            answers.extend(asking.ask_each(model, tokenizer, images, [r["question"] for r in batch], generation_config))
            bar.update(len(batch))
    return answers


def evaluate(
    model,
    tokenizer,
    records: Sequence[dict],
    dataset_root,
    dishes: Sequence[dict],
    generation_config: Optional[dict] = None,
    batch_size: int = 8,
    progress: bool = True,
    meta: Optional[dict] = None,
) -> EvalResult:
    """``predict`` then ``score``; meta records the generation settings (and whatever you add)."""
    answers = predict(model, tokenizer, records, dataset_root, generation_config, batch_size, progress)
    notes = {
        "generation_config": dict(DEFAULT_GENERATION if generation_config is None else generation_config),
        "dataset_root": str(dataset_root),
    }
    return score(records, answers, dishes, meta={**notes, **(meta or {})})


def evaluation_file(path, records: Sequence[dict], device: str, batch_size: int, cache) -> Path:
    """Where the result of one checkpoint on one record list is kept: named by a hash of what decides it."""
    digest = hashlib.sha256(
        json.dumps([list(records), device, batch_size], sort_keys=True, ensure_ascii=False).encode()
    )
    for part in sorted(Path(path).glob("*.safetensors")) + sorted(Path(path).glob("*.py")) + _SCORING_CODE:
        digest.update(part.name.encode())
        digest.update(part.read_bytes())
    return Path(cache) / f"{Path(path).name}-{digest.hexdigest()[:16]}.json"


def evaluate_cached(
    path,
    sets: Mapping[str, Tuple[Sequence[dict], object]],
    dishes: Sequence[dict],
    cache,
    device: str = "cpu",
    batch_size: int = 8,
    progress: bool = True,
    reuse: bool = True,
) -> Dict[str, EvalResult]:
    """{set name: EvalResult} for the checkpoint folder `path` on each (records, dataset_root) of `sets`.

    Answers are deterministic (greedy), so each result is kept in the folder `cache` under a hash of what decides
    it: the checkpoint's weights and code, the records, the device, the batch size and the code that asks, parses
    and scores.
    Asking again (lesson 11 after the tests, the course model's figures and the fine-tune's "before") reads the
    result instead of answering every question again; reuse=False always answers. The model is loaded once,
    only when some set has no kept result.
    """
    from .. import models  # transformers: loaded only when some set must be answered

    kept, missing = {}, {}
    for name, (records, _) in sets.items():
        stored = evaluation_file(path, records, device, batch_size, cache)
        kept[name] = EvalResult.from_json(stored) if reuse and stored.is_file() else None
        if kept[name] is None:
            missing[name] = stored
    if missing:
        model, tokenizer = models.load_internvl(path, device, torch.float32 if device == "cpu" else None)
        try:
            for name, stored in missing.items():
                records, root = sets[name]
                kept[name] = evaluate(
                    model,
                    tokenizer,
                    records,
                    root,
                    dishes,
                    batch_size=batch_size,
                    progress=progress,
                    meta={"checkpoint": str(path), "eval_set": name},
                )
                stored.parent.mkdir(parents=True, exist_ok=True)
                partial = stored.with_name(f".{stored.name}.{os.getpid()}")
                kept[name].to_json(partial, overwrite=True)
                os.replace(partial, stored)
        finally:
            del model
    return kept
