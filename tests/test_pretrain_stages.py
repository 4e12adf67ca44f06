"""The tiny pre-training's text stage: multiple-choice look-ups tokenised as XTuner's template does."""

import torch
from mmengine.config import ConfigDict
from transformers import AutoTokenizer
from xtuner.utils import PROMPT_TEMPLATE

from course_lib.finetune.pretrain import _lookup_batch


def test_lookup_batches_train_only_the_reply(tiny_path):
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_path), trust_remote_code=True)
    template = ConfigDict(PROMPT_TEMPLATE.internlm2_chat)
    input_ids, mask, labels = _lookup_batch(tokenizer, template, torch.Generator().manual_seed(0), 6)
    assert input_ids.shape == mask.shape == labels.shape and input_ids.shape[0] == 6
    for ids, keep, target in zip(input_ids, mask, labels):
        text = tokenizer.decode(ids[keep.bool()])
        reply = tokenizer.decode(target[target != -100])
        name = reply.removesuffix("<|im_end|>")
        assert reply.endswith("<|im_end|>") and text.endswith(reply)
        question = text.split("<|im_start|>user\n", 1)[1].split("<|im_end|>", 1)[0]
        assert question.startswith(name) or f"Which option is {name}?" in question
        assert f". {name}\n" in question  # the name is one of the four options
        assert (target[~keep.bool()] == -100).all()  # padding is never trained


def test_lookup_batches_are_seeded(tiny_path):
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_path), trust_remote_code=True)
    template = ConfigDict(PROMPT_TEMPLATE.internlm2_chat)
    first = _lookup_batch(tokenizer, template, torch.Generator().manual_seed(3), 4)
    second = _lookup_batch(tokenizer, template, torch.Generator().manual_seed(3), 4)
    assert all(torch.equal(a, b) for a, b in zip(first, second))
