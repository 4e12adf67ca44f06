"""Ask an InternVL2 checkpoint about a picture: the one path from an image to the answer's text.

The evaluation, the conversion's check, the course model's figures, the serving engine's transformers backend
and lessons 10 and 11 all ask through here. A picture (a path, a PIL image, or tiles already cut) is tiled with
the checkpoint's own settings (``tiling_settings(model.config)``: dynamic tiling plus the thumbnail), the tiles
go where the vision tower's weights are, and the checkpoint's remote code answers: ``chat`` for one question
(optionally after a history of turns), ``batch_chat`` for one question per picture in one left-padded batch.

Decoding is greedy unless the generation settings say otherwise, so the same question gets the same answer.
"""

from typing import List, Optional, Sequence, Tuple

import torch

from .internvl_format import IMAGE_TAG, with_image_tag
from .tiling import load_image, tiling_settings

GREEDY = {"max_new_tokens": 24, "do_sample": False}


def placement(model) -> Tuple[torch.device, torch.dtype]:
    """(device, dtype) the vision tower expects: InternVL2's own chat() does not convert the pixels it is given."""
    try:
        weight = model.vision_model.embeddings.patch_embedding.weight
    except AttributeError:
        weight = next(model.parameters())
    return weight.device, weight.dtype


def pixels_for(model, image, settings: Optional[dict] = None) -> torch.Tensor:
    """The picture as (tiles, 3, size, size) on the model's device and dtype. A path or PIL image is tiled with
    settings (default: the checkpoint's); a tensor is taken as tiles already cut."""
    if isinstance(image, torch.Tensor):
        tiles = image
    else:
        tiles = load_image(image, **(settings if settings is not None else tiling_settings(model.config)))
    device, dtype = placement(model)
    return tiles.to(device=device, dtype=dtype)


def image_question(question: str) -> str:
    """A question about a picture as chat() keeps it in the history: the image tag first, unless it has one."""
    return question if IMAGE_TAG in question else with_image_tag(question)


def _generation(generation: Optional[dict]) -> dict:
    config = dict(GREEDY if generation is None else generation)
    config.setdefault("do_sample", False)  # a config that does not ask for sampling stays greedy
    return config


def ask(
    model,
    tokenizer,
    image,
    question: str,
    generation: Optional[dict] = None,
    history: Optional[Sequence[Tuple[str, str]]] = None,
    num_patches_list: Optional[Sequence[int]] = None,
) -> str:
    """The checkpoint's answer to one question about image (None: a text-only question).

    history is [(question, answer), ...] of earlier turns (image questions written with ``image_question``);
    num_patches_list gives the tile count of each picture when image holds the tiles of several.
    """
    pixels = None if image is None else pixels_for(model, image)
    with torch.no_grad():
        return model.chat(
            tokenizer,
            pixels,
            question,
            _generation(generation),
            history=list(history) if history else None,
            num_patches_list=None if num_patches_list is None else list(num_patches_list),
        )


def ask_each(
    model, tokenizer, images: Sequence, questions: Sequence[str], generation: Optional[dict] = None
) -> List[str]:
    """One answer per (picture, question), in one left-padded batch through batch_chat."""
    if len(images) != len(questions):
        raise ValueError(f"{len(images)} pictures for {len(questions)} questions: ask one question per picture")
    if not images:
        return []
    pixels = [pixels_for(model, image) for image in images]
    with torch.no_grad():
        return model.batch_chat(
            tokenizer,
            torch.cat(pixels),
            list(questions),
            _generation(generation),
            num_patches_list=[p.shape[0] for p in pixels],
        )
