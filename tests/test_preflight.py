"""The memory pre-flight: its parts add up as memory.py counts them, its activation term scales as attention does
and agrees with the tensors autograd really keeps in XTuner's forward pass, and it refuses with settings that fit."""

import json
from dataclasses import replace

import pytest
import torch
from conftest import REPO_ROOT

from course_lib import internvl2_2b
from course_lib.finetune import preflight
from course_lib.finetune.memory import GB, ModelShape, lora_parameters, zero_memory
from course_lib.finetune.preflight import (
    GIB,
    DoesNotFit,
    Precision,
    RunSettings,
    check_run,
    estimate,
    synthetic_batch,
)
from course_lib.finetune.xtuner_config import render

COURSE_MODEL = REPO_ROOT / "assets" / "course-model"
LECTURE = RunSettings(batch_size=4, max_length=8192, accumulative_counts=2, lora_r=128, zero_stage=2)
ONE_PICTURE = 13 * 256 + 256  # the kit's food records: one picture of up to 13 tiles and a short question


def gpu(gigabytes: float) -> int:
    """What mem_get_info reports free on an idle GPU sold as that many GB (its GiB, less about 0.6 for the driver)."""
    return int((gigabytes - 0.6) * GIB)


@pytest.fixture(scope="module")
def internvl2_2b_path(tmp_path_factory):
    """A config.json with InternVL2-2B's published sizes (course_lib.internvl2_2b, and InternViT-300M-448px's
    4096-wide MLP and 16 heads): the estimate reads nothing else of a checkpoint."""
    folder = tmp_path_factory.mktemp("checkpoints") / "InternVL2-2B"
    folder.mkdir()
    llm = internvl2_2b.LLM
    config = {
        "vision_config": {
            "num_hidden_layers": internvl2_2b.VISION["layers"],
            "hidden_size": internvl2_2b.VISION["hidden"],
            "intermediate_size": 4096,
            "num_attention_heads": 16,
            "image_size": internvl2_2b.IMAGE_SIZE,
            "patch_size": internvl2_2b.PATCH_SIZE,
            "qkv_bias": True,
            "norm_type": "layer_norm",
            "qk_normalization": False,
        },
        "llm_config": {
            "num_hidden_layers": llm["layers"],
            "hidden_size": llm["hidden"],
            "intermediate_size": llm["intermediate"],
            "num_attention_heads": llm["heads"],
            "num_key_value_heads": llm["kv_heads"],
            "vocab_size": llm["vocab_size"],
            "bias": False,
        },
        "downsample_ratio": internvl2_2b.DOWNSAMPLE_RATIO,
        "force_image_size": internvl2_2b.IMAGE_SIZE,
        "max_dynamic_patch": 12,
        "use_thumbnail": True,
    }
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_parameter_counts_come_from_config_json(internvl2_2b_path):
    from transformers import AutoConfig, AutoModel

    tiny = ModelShape.from_checkpoint(COURSE_MODEL)
    config = AutoConfig.from_pretrained(COURSE_MODEL, trust_remote_code=True)
    model = AutoModel.from_config(config, trust_remote_code=True)
    counted = {name: sum(p.numel() for p in getattr(model, name).parameters()) for name in ("vision_model", "mlp1")}
    counted["language_model"] = sum(p.numel() for p in model.language_model.parameters())
    assert (tiny.vision_parameters, tiny.mlp1_parameters, tiny.llm_parameters) == (
        counted["vision_model"],
        counted["mlp1"],
        counted["language_model"],
    )
    real = ModelShape.from_checkpoint(internvl2_2b_path)
    assert real.parameters == pytest.approx(internvl2_2b.PARAMETERS, rel=0.01)  # 2.206 B
    assert real.tiles() == 13 and real.image_tokens_per_tile == 256 and real.patches_per_tile == 1025
    llm = {key: value for key, value in internvl2_2b.LLM.items() if key != "vocab_size"}
    # XTuner's target_modules=None also wraps the output head, which lora_parameters leaves out
    assert real.llm_lora_parameters(128) == lora_parameters(128, **llm) + 128 * (2048 + 92_553)


def test_a_config_json_without_the_sizes_says_which_field(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"vision_config": {}, "llm_config": {}}))
    with pytest.raises(KeyError, match="config.json of .* has no 'num_"):
        ModelShape.from_checkpoint(tmp_path)
    with pytest.raises(FileNotFoundError, match="config.json"):
        ModelShape.from_checkpoint(tmp_path / "nowhere")


@pytest.mark.parametrize("gpus", [1, 2, 4])
@pytest.mark.parametrize("stage", [0, 1, 2, 3])
def test_fixed_part_is_zero_memorys(internvl2_2b_path, gpus, stage):
    shape = ModelShape.from_checkpoint(internvl2_2b_path)
    guess = estimate(shape, replace(LECTURE, zero_stage=stage, gpus=gpus))
    lora = shape.llm_lora_parameters(128)
    expected = zero_memory(shape.parameters + lora, lora + shape.mlp1_parameters, gpus, stage)
    for part, key in (("weights", "weights"), ("gradients", "gradients"), ("optimizer state", "optimizer")):
        assert guess.parts[part] == pytest.approx(expected[key] * GB, abs=1)
    # without DeepSpeed, peft's fp32 upcast of the LLM comes on top, stated as its own part
    amp = estimate(shape, replace(LECTURE, zero_stage=None))
    assert amp.parts["fp32 weights"] == 2 * shape.llm_parameters and "DeepSpeed buckets" not in amp.parts


@pytest.mark.parametrize("attention", ["eager", "flash"])
def test_activations_grow_linearly_in_batch_and_quadratically_in_sequence(internvl2_2b_path, attention):
    shape = ModelShape.from_checkpoint(internvl2_2b_path)
    base = replace(LECTURE, attention=attention, checkpointing=False)

    def saved(batch=1, length=2048, **changes):
        return estimate(shape, replace(base, batch_size=batch, max_length=length, **changes)).saved_bytes

    assert saved(batch=2) == 2 * saved(batch=1) and saved(batch=4) == 4 * saved(batch=1)
    one, two, three, four = (saved(length=n * 2048) for n in (1, 2, 3, 4))
    assert four - 3 * three + 3 * two - one == 0  # a polynomial of degree 2 in the sequence
    if attention == "eager":
        assert two - 2 * one > 0 and saved(length=8192) / saved(length=4096) > 3  # s^2 dominates at 8192
    else:
        assert three - 2 * two + one == 0  # FlashAttention keeps nothing in s^2: linear
    for checkpointing in (False, True):
        run = replace(base, checkpointing=checkpointing)
        guess = estimate(shape, run)
        assert guess.activations > 0 and guess.total > guess.fixed
    off = estimate(shape, base)
    on = estimate(shape, replace(base, checkpointing=True))
    assert on.saved_bytes < off.saved_bytes / 5 and on.activations < off.activations


@pytest.fixture(scope="module")
def xtuner_model(tmp_path_factory):
    """XTuner's InternVL_V1_5 around the course model as the tiny recipe trains it: LoRA on every Linear of the
    LLM (r=8, dropout 0.05), frozen vision encoder, float32 (Float32Hook), checkpointing off (the CPU hook)."""
    import torch.distributed as dist
    from peft import LoraConfig
    from xtuner.model import InternVL_V1_5

    created = not dist.is_initialized()
    if created:
        store = tmp_path_factory.mktemp("dist") / "store"
        dist.init_process_group("gloo", init_method=f"file://{store}", rank=0, world_size=1)
    lora = dict(type=LoraConfig, r=8, lora_alpha=16, lora_dropout=0.05, target_modules=None, task_type="CAUSAL_LM")
    model = InternVL_V1_5(str(COURSE_MODEL), freeze_llm=True, freeze_visual_encoder=True, llm_lora=lora)
    model.float().train()
    yield model
    if created:
        dist.destroy_process_group()


def _saved_bytes(model, run) -> int:
    """Bytes of the distinct storages autograd saves for backward while `run()` runs (parameters excluded)."""
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in weights:
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        out = run()
    del out
    return sum(storages.values())


CPU_AUTOCAST = Precision("CPU bf16 autocast", 2, 4, 4, True, 4, 4)  # dropout keeps a float mask on a CPU


@pytest.mark.parametrize(
    "batch, length, checkpointing, precision",
    [
        (1, 384, False, None),
        (2, 384, False, None),
        (1, 768, False, None),
        (1, 768, True, None),
        (2, 768, False, CPU_AUTOCAST),
    ],
)
def test_estimate_matches_the_tensors_autograd_keeps(
    xtuner_model, one_torch_thread, batch, length, checkpointing, precision
):
    """The activation formula against a count of what autograd really saves in XTuner's forward pass of the
    course model (tiny sizes, same code: InternLM2 eager attention, peft LoRA, XTuner's loss). Measured ratios
    counted/estimated, 2026-12-07: 1.003 (fp32), 1.004 (bf16 autocast), 1.03 with checkpointing (the estimate
    leaves out the rotary tables, 2*s*d floats, which weigh more when little else is kept)."""
    if checkpointing:
        xtuner_model.gradient_checkpointing_enable()
    else:
        xtuner_model.gradient_checkpointing_disable()
    data = synthetic_batch(xtuner_model, batch, length)

    def forward():
        if precision is None:
            return xtuner_model(data)["loss"]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return xtuner_model(data)["loss"]

    counted = _saved_bytes(xtuner_model, forward)
    run = RunSettings(
        batch_size=batch,
        max_length=length,
        lora_r=8,
        amp=False,
        checkpointing=checkpointing,
        max_dynamic_patch=1,
        precision=precision,
    )
    guessed = estimate(COURSE_MODEL, run).saved_bytes
    print(f"batch {batch}, {length} tokens, checkpointing {checkpointing}: counted/estimated {counted / guessed:.4f}")
    assert 0.95 < counted / guessed < 1.05


def test_trained_vision_encoder_matches_the_tensors_it_keeps(xtuner_model, one_torch_thread):
    """The vision part, trained (the course model's InternViT uses torch's scaled_dot_product_attention, which on a
    CPU keeps no tiles x heads x 1025^2 scores: FlashAttention's formula)."""
    vision = xtuner_model.model.vision_model
    vision.requires_grad_(True)
    try:
        pixels = torch.randn(2, 3, 448, 448, generator=torch.Generator().manual_seed(0))
        counted = _saved_bytes(xtuner_model, lambda: vision(pixel_values=pixels).last_hidden_state)
    finally:
        vision.requires_grad_(False)
    run = RunSettings(
        batch_size=2, max_length=512, lora_r=8, amp=False, checkpointing=False, max_dynamic_patch=1, freeze_vision=False
    )
    guessed = estimate(COURSE_MODEL, replace(run, attention="flash")).saved["vision encoder"]
    print(f"vision encoder, 2 tiles, trained: counted/estimated {counted / guessed:.4f}")
    assert 0.95 < counted / guessed < 1.05


@pytest.mark.parametrize("attention, sequence", [("eager", None), ("flash", None), ("eager", ONE_PICTURE)])
def test_the_lecture_run_fits_80_gb_not_16_gb_and_the_suggestions_fit(internvl2_2b_path, attention, sequence):
    """The lecture's run (LoRA r=128, batch 4 x 2, max_length 8192, ZeRO-2 on one GPU): every sample as long as
    max_length, with the course environment's eager attention or with flash-attn; or the kit's one-picture records."""
    run = replace(LECTURE, attention=attention, sequence_tokens=sequence)
    report = check_run(run, internvl2_2b_path, gpus=1, zero_stage=2, free_bytes=gpu(80), attention=attention)
    assert report.fits and "fits" in str(report)
    with pytest.raises(DoesNotFit) as refused:
        check_run(run, internvl2_2b_path, gpus=1, zero_stage=2, free_bytes=gpu(16), attention=attention)
    message, alternatives = str(refused.value), refused.value.report.alternatives
    assert "does NOT fit" in message and "GiB" in message and "LLM layers kept" in message
    assert alternatives and "Settings the estimate says fit" in message
    shape = ModelShape.from_checkpoint(internvl2_2b_path)
    for settings, guess, changes in alternatives:
        assert estimate(shape, settings).total == guess.total <= gpu(16)  # what it names, the estimate says fits
        assert settings.batch_size * settings.accumulative_counts == 8  # the same samples per update
        assert all(change in message for change in changes)


def test_without_deepspeed_the_lecture_run_needs_a_smaller_batch_on_80_gb(internvl2_2b_path):
    """AMP without DeepSpeed: peft's fp32 LLM (3.5 GiB more) and an fp32 residual stream; 4 samples x 16 heads x
    8192^2 eager attention scores are 17 GB in fp32 per layer, kept twice over in the layer being recomputed."""
    with pytest.raises(DoesNotFit) as refused:
        check_run(LECTURE, internvl2_2b_path, zero_stage=None, free_bytes=gpu(80), attention="eager")
    report = refused.value.report
    assert report.estimate.phase == "the language model's backward pass"
    first = report.alternatives[0][0]
    assert (first.batch_size, first.accumulative_counts, first.max_length) == (2, 4, 8192)


def test_go_on_warns_and_returns_the_report(internvl2_2b_path):
    with pytest.warns(RuntimeWarning, match="does NOT fit"):
        report = check_run(LECTURE, internvl2_2b_path, zero_stage=2, free_bytes=gpu(16), go_on=True)
    assert not report.fits and report.alternatives and report.free_bytes == gpu(16)


def test_settings_are_read_from_a_rendered_config(tmp_path):
    real, tiny = tmp_path / "real.py", tmp_path / "tiny.py"
    real.write_text(render("real", model_path=COURSE_MODEL, train_json=tmp_path / "t.json", image_folder=tmp_path))
    tiny.write_text(render("tiny", model_path=COURSE_MODEL, train_json=tmp_path / "t.json", image_folder=tmp_path))
    settings = preflight.read_settings(real)
    assert (settings.batch_size, settings.max_length, settings.accumulative_counts) == (4, 8192, 2)
    assert (settings.lora_r, settings.lora_dropout, settings.checkpointing, settings.amp) == (128, 0.05, True, True)
    assert settings.freeze_llm and settings.freeze_vision and settings.source == str(real)
    cpu = preflight.read_settings(tiny)
    assert (cpu.accumulative_counts, cpu.checkpointing, cpu.amp) == (1, False, False)
    report = check_run(real, COURSE_MODEL, free_bytes=gpu(80), attention="eager")
    assert report.fits and report.settings.zero_stage is None


def test_zero_stage_of_the_runners_deepspeed_argument(tmp_path):
    assert preflight.zero_stage_of(None) is None
    assert preflight.zero_stage_of("deepspeed_zero2") == 2
    (tmp_path / "ds.json").write_text(json.dumps({"zero_optimization": {"stage": 3}}))
    assert preflight.zero_stage_of(str(tmp_path / "ds.json")) == 3
    with pytest.raises(ValueError, match="deepspeed_zero1/2/3"):
        preflight.zero_stage_of("fast")


def test_train_runs_the_pre_flight_on_the_run_it_launches(tiny_path, small_data, tmp_path):
    """runner.memory_preflight (what train() calls before XTuner starts on a GPU) reads the run's own config, model,
    longest sample and launch: refused with settings that fit when the GPU is too small, unless go_on."""
    from course_lib.finetune import runner

    data, images = small_data
    run = runner.new_run("food", "real", tiny_path, data, images, tmp_path / "runs", bf16=True)
    assert 0 < run.info()["longest_sample_tokens"] <= 8192
    roomy = runner.memory_preflight(run, "deepspeed_zero2", free_bytes=80 * GIB)
    assert roomy.fits and roomy.settings.zero_stage == 2
    assert roomy.settings.sequence_tokens == run.info()["longest_sample_tokens"]
    with pytest.raises(DoesNotFit, match="Settings the estimate says fit|No change") as refused:
        runner.memory_preflight(run, "deepspeed_zero2", free_bytes=roomy.estimate.total - 1)
    assert "does NOT fit" in str(refused.value)
    with pytest.warns(RuntimeWarning, match="does NOT fit"):
        assert not runner.memory_preflight(run, None, free_bytes=GIB // 4, go_on=True).fits
