"""XTuner 0.2.0's InternVL code loads and trains the tiny checkpoint as it does InternVL2-2B."""

import json

import pytest
import torch
import torch.distributed as dist
from conftest import FOOD_IMAGES


@pytest.fixture(scope="module")
def single_process_group(tmp_path_factory):
    """xtuner/model/internvl.py calls torch.distributed.get_rank(): give it a 1-process gloo group."""
    created = not dist.is_initialized()
    if created:
        store = tmp_path_factory.mktemp("dist") / "store"
        dist.init_process_group("gloo", init_method=f"file://{store}", rank=0, world_size=1)
    yield
    if created:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def food_records(tmp_path_factory):
    folder = tmp_path_factory.mktemp("vqa")
    records = [
        {
            "image": "1f95f.webp",
            "conversations": [
                {"from": "human", "value": "图中的菜是什么？\n<image>"},
                {"from": "gpt", "value": "饺子"},
            ],
        },
        {
            "image": "1f35c.webp",
            "conversations": [
                {"from": "human", "value": "<image>\nWhat food is this?"},
                {"from": "gpt", "value": "ramen noodles"},
                {"from": "human", "value": "中文叫什么？"},
                {"from": "gpt", "value": "拉面"},
            ],
        },
    ]
    (folder / "data.json").write_text(json.dumps(records, ensure_ascii=False))
    return folder / "data.json", FOOD_IMAGES


def _dataset(tiny_path, food_records):
    from mmengine.config import ConfigDict
    from xtuner.dataset import InternVL_V1_5_Dataset
    from xtuner.utils import PROMPT_TEMPLATE

    data_path, image_folder = food_records
    return InternVL_V1_5_Dataset(
        model_path=str(tiny_path),
        template=ConfigDict(PROMPT_TEMPLATE.internlm2_chat),
        data_paths=str(data_path),
        image_folders=str(image_folder),
        max_length=8192,
    )


def test_dataset_expands_image_tokens_and_labels_only_answers(tiny_path, food_records):
    dataset = _dataset(tiny_path, food_records)
    tokenizer = dataset.tokenizer
    context = tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>")
    for index in range(len(dataset)):
        item = dataset[index]
        tiles = item["pixel_values"].shape[0]
        assert item["pixel_values"].shape[1:] == (3, 448, 448)
        assert item["input_ids"].count(context) == tiles * 256
        assert item["input_ids"][0] == tokenizer.bos_token_id
    item = dataset[1]
    labelled = tokenizer.decode([t for t, label in zip(item["input_ids"], item["labels"]) if label != -100])
    assert labelled == "ramen noodles<|im_end|>拉面<|im_end|>"
    prompt = tokenizer.decode([t for t in item["input_ids"] if t != context])
    assert prompt.startswith("<s><|im_start|>system\nYou are an AI assistant")
    assert "<|im_start|>user\n<img></img>\nWhat food is this?<|im_end|><|im_start|>assistant\n" in prompt


def test_internvl_v1_5_wrapper_loads_and_lora_trains(tiny_path, food_records, single_process_group):
    from peft import LoraConfig
    from xtuner.dataset.collate_fns import default_collate_fn
    from xtuner.model import InternVL_V1_5

    model = InternVL_V1_5(
        model_path=str(tiny_path),
        freeze_llm=True,
        freeze_visual_encoder=True,
        llm_lora=dict(
            type=LoraConfig, r=8, lora_alpha=16, lora_dropout=0.0, target_modules=None, task_type="CAUSAL_LM"
        ),
    )
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in name or ".mlp1." in name for name in trainable)
    targets = set(model.model.language_model.peft_config["default"].target_modules)
    assert targets == {"wqkv", "wo", "w1", "w2", "w3", "output"}  # every Linear of InternLM2, as FACTS.md says

    dataset = _dataset(tiny_path, food_records)
    batch = default_collate_fn([dataset[0], dataset[1]])["data"]
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    model.train()
    torch.manual_seed(0)
    losses = []
    for _ in range(6):
        loss = model(batch)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 1.0, losses
    saved = model.state_dict()
    assert saved and all("lora_" in key or "mlp1" in key for key in saved)
