"""Asking a checkpoint about a picture (course_lib.asking): the same answer as the checkpoint's own chat() on the
same tiles, whatever form the picture comes in; a batch answers as one question at a time; clear errors."""

import pytest
import torch
from conftest import FOOD_IMAGES
from PIL import Image

from course_lib.asking import GREEDY, ask, ask_each, image_question, pixels_for
from course_lib.internvl_format import IMAGE_TAG
from course_lib.tiling import load_image, tiling_settings

DUMPLINGS = FOOD_IMAGES / "1f95f.webp"


def test_a_path_a_pil_image_and_tiles_get_the_answer_chat_gives(tiny, one_torch_thread):
    model, tokenizer = tiny
    tiles = load_image(DUMPLINGS, **tiling_settings(model.config))
    theirs = model.chat(tokenizer, tiles, "图中的菜是什么？", dict(GREEDY))
    assert ask(model, tokenizer, DUMPLINGS, "图中的菜是什么？") == theirs
    assert ask(model, tokenizer, Image.open(DUMPLINGS), "图中的菜是什么？") == theirs
    assert ask(model, tokenizer, tiles, "图中的菜是什么？") == theirs
    assert isinstance(ask(model, tokenizer, None, "你好"), str)  # text only


def test_pixels_are_tiled_with_the_checkpoints_settings_and_placed_on_its_tower(tiny):
    model, _ = tiny
    pixels = pixels_for(model, DUMPLINGS)
    assert torch.equal(pixels, load_image(DUMPLINGS, **tiling_settings(model.config)))
    weight = model.vision_model.embeddings.patch_embedding.weight
    assert pixels.device == weight.device and pixels.dtype == weight.dtype
    assert pixels_for(model, DUMPLINGS, dict(tiling_settings(model.config), max_num=1)).shape[0] == 1


def test_a_batch_answers_as_one_question_at_a_time(tiny, one_torch_thread):
    model, tokenizer = tiny
    wide = Image.open(DUMPLINGS).convert("RGB").resize((896, 300))
    questions = ["图中的菜是什么？", "What dish is this?"]
    together = ask_each(model, tokenizer, [DUMPLINGS, wide], questions)
    assert together == [ask(model, tokenizer, DUMPLINGS, questions[0]), ask(model, tokenizer, wide, questions[1])]
    assert ask_each(model, tokenizer, [], []) == []
    with pytest.raises(ValueError, match="one question per picture"):
        ask_each(model, tokenizer, [DUMPLINGS], questions)


def test_a_history_turn_is_written_as_chat_keeps_it(tiny, one_torch_thread):
    model, tokenizer = tiny
    assert image_question("这是什么？") == IMAGE_TAG + "\n这是什么？"
    assert image_question(IMAGE_TAG + "\n这是什么？") == IMAGE_TAG + "\n这是什么？"  # not tagged twice
    tiles = load_image(DUMPLINGS, **tiling_settings(model.config))
    first, history = model.chat(tokenizer, tiles, "这是什么？", dict(GREEDY), return_history=True)
    assert history == [(image_question("这是什么？"), first)]
    second = model.chat(tokenizer, tiles, "用英文说。", dict(GREEDY), history=history)
    assert ask(model, tokenizer, DUMPLINGS, "用英文说。", history=[(image_question("这是什么？"), first)]) == second
