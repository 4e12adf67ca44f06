"""Precision chosen by the GPU: bfloat16 where it computes in it, float16 where it does not (V100, T4, RTX 20xx),
float32 on a CPU. The GPU's answer is a parameter, so the rule is checked here without a GPU and without patching
torch; the device check (scripts/gpu_check.py) records what a real GPU answers."""

import pytest
import torch

from course_lib import envcheck, models, precision


@pytest.mark.parametrize(
    "device, bf16, name",
    [("cpu", None, "float32"), ("cuda", True, "bfloat16"), ("cuda:1", True, "bfloat16"), ("cuda", False, "float16")],
)
def test_the_rule(device, bf16, name):
    chosen = precision.choose(device, bf16, gpu="Tesla T4" if bf16 is False else "NVIDIA A100")
    assert chosen.name == name and chosen.dtype == getattr(torch, name)
    assert models.default_dtype(device, bf16) == getattr(torch, name)


def test_the_reason_names_the_gpu_and_what_it_lacks():
    t4 = precision.choose("cuda", bf16=False, gpu="Tesla T4")
    assert t4.short == "fp16" and "Tesla T4" in t4.reason and "no bfloat16" in t4.reason
    a100 = precision.choose("cuda", bf16=True, gpu="NVIDIA A100-SXM4-80GB")
    assert a100.short == "bf16" and "A100" in a100.reason
    assert precision.choose("cpu").short == "fp32"


def test_emulated_bf16_does_not_count():
    """torch.cuda.is_bf16_supported() answers True on a V100 by default (it can store bfloat16 there); the kit
    asks whether the GPU computes in it. Without a GPU, both say no."""
    if torch.cuda.is_available():
        major, _ = torch.cuda.get_device_capability()
        assert precision.gpu_has_bf16() == (major >= precision.BF16_MIN_CAPABILITY[0])
    else:
        assert precision.gpu_has_bf16() is False
        assert precision.choose("cpu").name == "float32"


@pytest.mark.parametrize("bf16, shown", [(True, "bfloat16"), (False, "float16")])
def test_the_environment_check_says_which_and_why(bf16, shown):
    check = envcheck.check_precision("cuda", bf16, gpu="the classroom GPU")
    assert check.name == "precision" and check.ok is True
    assert check.detail.startswith(shown) and "the classroom GPU" in check.detail
    assert envcheck.check_precision("cpu").detail.startswith("float32")


# ---- the training recipe ---------------------------------------------------------------------------------
def test_the_gpu_recipe_casts_frozen_weights_to_float16_only_on_a_gpu_without_bf16(tmp_path):
    from mmengine.config import Config

    from course_lib.finetune import xtuner_config

    assert "FrozenFloat16Hook" not in xtuner_config.render("real")  # the committed file: the lecture's A100
    assert xtuner_config.render("tiny", bf16=False) == xtuner_config.render("tiny")  # a CPU trains in float32
    text = xtuner_config.render("real", bf16=False)
    assert 'dtype="float16"' in text and "dict(type=FrozenFloat16Hook)" in text
    (tmp_path / "t4.py").write_text(text, encoding="utf-8")
    config = Config.fromfile(str(tmp_path / "t4.py"))  # mmengine parses it, the hook's import included
    assert any("FrozenFloat16Hook" in str(hook["type"]) for hook in config.custom_hooks)


def test_frozen_weights_become_float16_and_trained_ones_stay(tiny_path):
    """As XTuner builds the model: loaded in bfloat16, base weights frozen, LoRA on the language model, mlp1
    trained. The hook casts the frozen weights in place (the optimizer's Parameter objects stay the same)."""
    from course_lib.finetune.gpu_hooks import frozen_to_float16

    model, _ = models.load_internvl(tiny_path, "cpu", torch.bfloat16)
    model.requires_grad_(False)
    model.wrap_llm_lora(r=4, lora_alpha=8)
    model.mlp1.requires_grad_(True)
    before = {name: (param, param.dtype) for name, param in model.named_parameters()}
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad and p.dtype == torch.bfloat16)
    assert frozen_to_float16(model) == frozen > 0
    for name, param in model.named_parameters():
        assert param is before[name][0]
        if param.requires_grad:
            assert param.dtype == before[name][1]  # LoRA float32 (peft), mlp1 as XTuner left it
        else:
            assert param.dtype in (torch.float16, torch.float32) and param.dtype != torch.bfloat16
    assert frozen_to_float16(model) == 0  # nothing left to cast (as under DeepSpeed fp16)


def test_a_gpu_recipe_run_without_bf16_trains_in_float16_also_under_deepspeed(tiny_path, small_data, tmp_path):
    """A run is given its precision once (run.json): for a T4 the config casts the frozen weights to float16 and
    DeepSpeed's "auto" becomes fp16, where XTuner's own resolution would pick bf16 (torch counts emulation)."""
    import json
    from pathlib import Path

    from course_lib.finetune import runner

    data, images = small_data
    t4 = runner.new_run("food", "real", tiny_path, data, images, tmp_path / "runs", bf16=False)
    a100 = runner.new_run("food", "real", tiny_path, data, images, tmp_path / "runs", bf16=True)
    cpu = runner.new_run("food", "tiny", tiny_path, data, images, tmp_path / "runs")
    assert [run.info()["precision"] for run in (t4, a100, cpu)] == ["float16", "bfloat16", "float32"]
    assert "dict(type=FrozenFloat16Hook)" in t4.config.read_text()
    assert "FrozenFloat16Hook" not in a100.config.read_text()
    for run, fp16, bf16 in ((t4, True, False), (a100, False, True), (cpu, False, False)):
        used = json.loads(Path(runner.deepspeed_argument(run, "deepspeed_zero2")).read_text())
        assert (used["fp16"]["enabled"], used["bf16"]["enabled"]) == (fp16, bf16), run.info()["precision"]
