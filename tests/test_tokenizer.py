"""The tiny tokenizer: offline, byte-level (no unknown characters), InternVL2's special tokens, chat template."""

import pytest

from course_lib.tiny_internvl2.corpus import DISHES

SPECIAL = ["<img>", "</img>", "<IMG_CONTEXT>", "<|im_start|>", "<|im_end|>"]


@pytest.fixture(scope="module")
def tokenizer(tiny):
    return tiny[1]


def test_special_tokens_are_single_tokens(tokenizer):
    for token in SPECIAL:
        ids = tokenizer(token, add_special_tokens=False).input_ids
        assert len(ids) == 1 and tokenizer.convert_ids_to_tokens(ids) == [token]
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token) == ("<s>", "</s>", "</s>")
    assert tokenizer("hi").input_ids[0] == tokenizer.bos_token_id


@pytest.mark.parametrize(
    "text", ["锅包肉", "肠粉", "螺蛳粉很好吃😀", "Peking duck, 北京烤鸭!", "x\n\ty  z", "ḁ̷̜̓ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢"]
)
def test_any_text_round_trips(tokenizer, text):
    assert tokenizer.decode(tokenizer(text).input_ids, skip_special_tokens=True) == text


def test_dish_names_are_compact(tokenizer):
    lengths = [len(tokenizer(zh, add_special_tokens=False).input_ids) for zh, _ in DISHES]
    assert max(lengths) <= 4, lengths


def test_chat_template_renders_the_chat_prompt(tiny):
    model, tokenizer = tiny
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    module = get_class_from_dynamic_module("conversation.Conversation", str(model.name_or_path)).__module__
    import sys

    conversation = sys.modules[module]
    template = conversation.get_conv_template(model.template)
    template.system_message = model.system_message
    template.append_message(template.roles[0], "图中的菜是什么？")
    template.append_message(template.roles[1], "饺子")
    template.append_message(template.roles[0], "确定吗？")
    template.append_message(template.roles[1], None)
    from_chat = tokenizer(template.get_prompt()).input_ids
    messages = [
        {"role": "user", "content": "图中的菜是什么？"},
        {"role": "assistant", "content": "饺子"},
        {"role": "user", "content": "确定吗？"},
    ]
    from_template = tokenizer.apply_chat_template(messages, add_generation_prompt=True)
    assert from_template == from_chat
