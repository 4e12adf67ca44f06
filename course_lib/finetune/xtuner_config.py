"""The XTuner LoRA config of the fine-tuning lesson, written once for two kinds of machine.

`render("real")` is the seed lesson's InternVL2-2B recipe (FoodieQA-style food VQA, LoRA r=128 on the
language model, frozen ViT and LLM, AdamW 3e-5, 10 epochs, fp16 AMP, DeepSpeed ZeRO-2 on the command line);
`render("tiny")` is the same file for the tiny model on a CPU. They differ only in the keys listed in
PROFILES, each with the reason. `make configs` (or write_configs()) writes both into configs/; a test
keeps the committed files equal to what this module renders.

XTuner parses its configs lazily (mmengine), so a config cannot read environment variables: the committed
files hold default paths (edit a copy, as XTuner users do), and course_lib renders a config with the run's
own absolute paths into every run folder.
"""

from pathlib import Path
from typing import Dict, Optional

from course_lib.config import REPO_ROOT

# Every difference between the two configs, with why.
PROFILES: Dict[str, Dict[str, object]] = {
    "real": {
        "title": "InternVL2-2B, LoRA on food VQA, GPU (the seed lesson's recipe)",
        "default_model": "/root/share/new_models/OpenGVLab/InternVL2-2B",
        # The kit's own food set (`make tiny` builds it): FoodieQA's licence allows evaluation only. To train on
        # FoodieQA as the seed lesson did, acknowledge the licence in lesson 10 (plan_finetune(train_on="foodieqa")).
        "default_train_json": ".cache/food_vqa-current/xtuner/finetune_new.json",
        "default_image_folder": ".cache/food_vqa-current",
        "lr": "3e-5",
        "max_epochs": 10,
        "accumulative_counts": 2,
        "save_steps": 64,
        # The seed lesson keeps every checkpoint, to pick the best iter_N.pth afterwards (lesson 10).
        "save_total_limit": -1,
        "warmup_ratio": 0.03,
        "log_interval": 10,
        "dataloader_num_workers": 4,
        "optim_wrapper": "AmpOptimWrapper",
        "amp_keys": '\n    loss_scale="dynamic",\n    dtype="float16",',
        "custom_imports": "",
        "extra_hooks": "",
        "seed": 2024,
        "lora_r": 128,
    },
    "tiny": {
        "title": "tiny InternVL2, LoRA on the kit's food VQA set, CPU",
        "default_model": "<the tiny base checkpoint: course_lib writes the path into each run's config>",
        "default_train_json": "<the kit's food set: xtuner/finetune_new.json>",
        "default_image_folder": "<the kit's food set folder>",
        # A 4 M-parameter model learns new dishes at a larger step, in fewer epochs, than a 2 B one.
        "lr": "5e-4",
        "max_epochs": 3,
        # One process with no memory limit to speak of: the budget is minutes, so every 4 samples make an update.
        # Twice the updates of accumulating 2 in the same time, so more of the new dishes are learnt within the
        # budget; what that costs the base dishes, a larger replay share mends (kit_food_set.SPEC). What was
        # measured: README, "Why the course model's recipe is as it is"; what holds today: test_finetune_food.py.
        "accumulative_counts": 1,
        # A short run saves more often, so an interrupted run has a checkpoint to resume from.
        "save_steps": 16,
        # 30 checkpoints of a 4 M-parameter run would only fill the cache; the last two are enough to resume.
        "save_total_limit": 2,
        # A short run still needs a warm-up of 2 iterations or more (see runner.check_warmup).
        "warmup_ratio": 0.05,
        "log_interval": 1,
        # CPU: data loading in the training process.
        "dataloader_num_workers": 0,
        # AmpOptimWrapper asserts on CPU; fp16 loss scaling needs CUDA.
        "optim_wrapper": "OptimWrapper",
        "amp_keys": "",
        # XTuner's InternVL forward calls torch.distributed.get_rank(): one CPU process needs a gloo group;
        # and with no AMP, the bfloat16 weights XTuner loads must train in float32 (see cpu_hooks).
        # A resumed run must draw the same LoRA dropout masks as an uninterrupted one (IterationSeedHook).
        # Activation checkpointing saves GPU memory by recomputing; a CPU run is short of time instead.
        "custom_imports": (
            "\nfrom course_lib.finetune.cpu_hooks import Float32Hook, IterationSeedHook, "
            "NoActivationCheckpointingHook, SingleProcessGroupHook\n"
        ),
        "extra_hooks": (
            ", dict(type=SingleProcessGroupHook), dict(type=Float32Hook), dict(type=IterationSeedHook), "
            "dict(type=NoActivationCheckpointingHook)"
        ),
        "seed": 2024,
        "lora_r": 128,
    },
}

# The settings a run may change from its profile (lesson 11's sweep, new_run(settings=...)): passes over the data
# and LoRA's rank. LoRA's alpha follows the rank (alpha = 2 r), so alpha / r, the update's scale, stays 2.
RUN_SETTINGS = ("max_epochs", "lora_r")

BATCH_SIZE = 4  # per device, both profiles (the template's batch_size)

# What each setting means, as the lecture explains it.
FIELD_NOTES = {
    "path": "the checkpoint to fine-tune (InternVL2-2B in real mode)",
    "data_path / image_folder": "the training records and the folder their image paths start from",
    "prompt_template": "the chat template of the language model (InternLM2's), so training prompts match chat()",
    "max_length": "the longest sample in tokens, image tokens included; longer ones are cut",
    "batch_size": "samples per step on each device; bounded by GPU memory",
    "accumulative_counts": "gradient accumulation: add up gradients of this many steps before one update",
    "dataloader_num_workers": "processes that load and tile images while the GPU trains",
    "max_epochs": "passes over the data (the seed lesson used 10 and notes it overfits food on purpose)",
    "optim_type / lr / betas / weight_decay": "AdamW, its learning rate, momentum terms and decoupled weight decay",
    "max_norm": "gradient clipping: gradients longer than this are scaled down",
    "warmup_ratio": "share of training over which the learning rate rises linearly, before the cosine decay",
    "save_steps / save_total_limit": "save a checkpoint every N iterations; keep the last K (-1: all)",
    "freeze_llm / freeze_visual_encoder": "the base weights stay fixed; only LoRA and mlp1 train",
    "llm_lora (r, lora_alpha, lora_dropout)": "rank of the low-rank update, its scale alpha/r, dropout on its input",
    "optim_wrapper": "AMP (fp16 with loss scaling) on a GPU; plain fp32 on a CPU",
    "param_scheduler": "LinearLR warm-up, then CosineAnnealingLR down to 0",
    "default_hooks.logger (LoggerHook interval)": (
        "log loss and learning rate every N iterations; lower it to see "
        "the first figures sooner (the lecture's tip; 1 in tiny mode)"
    ),
    "load_from / resume": "continue an interrupted run from a checkpoint (course_lib passes --resume)",
}

# Why the tiny profile differs (PROFILES' comments, for the lesson's table).
DIFFERENCE_REASONS = {
    "lr": "a 4 M-parameter model learns new dishes at a larger step than a 2 B one",
    "max_epochs": "a 4 M-parameter model needs fewer passes; the CPU budget is minutes",
    "accumulative_counts": "on a CPU the limit is minutes, not memory: an update every 4 samples doubles the updates",
    "save_steps": "a short run saves more often, so an interrupted run has a checkpoint to resume from",
    "save_total_limit": "the lecture keeps every checkpoint (-1) to choose among; a short CPU run keeps the last two",
    "warmup_ratio": "a short run still needs a warm-up of 2 iterations or more (a 1-iteration one trains nothing)",
    "log_interval": "a short run logs every iteration, for the progress bar",
    "dataloader_num_workers": "on a CPU the data is loaded in the training process",
    "optim_wrapper": "AmpOptimWrapper (fp16 with loss scaling) needs CUDA; a CPU trains in fp32",
    "custom_imports": (
        "XTuner's InternVL forward calls torch.distributed.get_rank(): one CPU process needs a gloo group; "
        "without AMP, XTuner's bfloat16 weights must train in float32; and the lesson's resumed run must "
        "end exactly where an uninterrupted one does; activation checkpointing, which saves GPU memory by "
        "recomputing, is off (0.60 s an iteration instead of 0.92 s); the real config stays free of "
        "course_lib"
    ),
}

CONFIG_FILES = {"real": "internvl2_2b_food_lora.py", "tiny": "tiny_internvl2_food_lora_cpu.py"}

TEMPLATE = """# XTuner config: {title}.
# Generated by course_lib/finetune/xtuner_config.py ("{profile}" profile); edit that file, then `make configs`.
#   xtuner train THIS_FILE [--deepspeed deepspeed_zero2]   (set the three paths below first)
from mmengine.hooks import CheckpointHook, DistSamplerSeedHook, IterTimerHook, LoggerHook, ParamSchedulerHook
from mmengine.optim import {optim_wrapper}, CosineAnnealingLR, LinearLR
from peft import LoraConfig
from torch.optim import AdamW
from transformers import AutoTokenizer

from xtuner.dataset import InternVL_V1_5_Dataset
from xtuner.dataset.collate_fns import default_collate_fn
from xtuner.dataset.samplers import LengthGroupedSampler
from xtuner.engine.hooks import DatasetInfoHook
from xtuner.engine.runner import TrainLoop
from xtuner.model import InternVL_V1_5
from xtuner.utils import PROMPT_TEMPLATE
{custom_imports}
#######################################################################
#                          PART 1  Settings                           #
#######################################################################
# Model: the checkpoint folder to fine-tune
path = "{model_path}"

# Data: XTuner InternVL records, {{"image": ..., "conversations": [...]}}, image paths relative to image_folder
data_path = "{train_json}"
image_folder = "{image_folder}"
prompt_template = PROMPT_TEMPLATE.internlm2_chat  # InternVL2-2B's LLM is InternLM2: its chat template
max_length = 8192  # longest sample in tokens, image tokens included

# Scheduler & Optimizer
batch_size = 4  # per device
accumulative_counts = {accumulative_counts}  # gradient accumulation: an effective batch of 4 x this, per device
dataloader_num_workers = {dataloader_num_workers}
max_epochs = {max_epochs}
optim_type = AdamW
lr = {lr}
betas = (0.9, 0.999)
weight_decay = 0.05
max_norm = 1  # gradient clipping
warmup_ratio = {warmup_ratio}  # share of training spent warming the learning rate up

# Save
save_steps = {save_steps}
save_total_limit = {save_total_limit}  # checkpoints kept (-1 keeps all)

#######################################################################
#            PART 2  Model & Tokenizer & Image Processor              #
#######################################################################
model = dict(
    type=InternVL_V1_5,
    model_path=path,
    freeze_llm=True,
    freeze_visual_encoder=True,
    llm_lora=dict(
        type=LoraConfig, r={r}, lora_alpha={alpha}, lora_dropout=0.05, target_modules=None, task_type="CAUSAL_LM"
    ),
)

#######################################################################
#                      PART 3  Dataset & Dataloader                   #
#######################################################################
food_dataset = dict(
    type=InternVL_V1_5_Dataset,
    model_path=path,
    data_paths=data_path,
    image_folders=image_folder,
    template=prompt_template,
    max_length=max_length,
)

train_dataloader = dict(
    batch_size=batch_size,
    num_workers=dataloader_num_workers,
    dataset=food_dataset,
    sampler=dict(
        type=LengthGroupedSampler,
        length_property="modality_length",
        per_device_batch_size=batch_size * accumulative_counts,
    ),
    collate_fn=dict(type=default_collate_fn),
)

#######################################################################
#                    PART 4  Scheduler & Optimizer                    #
#######################################################################
optim_wrapper = dict(
    type={optim_wrapper},
    optimizer=dict(type=optim_type, lr=lr, betas=betas, weight_decay=weight_decay),
    clip_grad=dict(max_norm=max_norm, error_if_nonfinite=False),
    accumulative_counts=accumulative_counts,{amp_keys}
)

# Linear warm-up from almost 0, then cosine decay to 0
param_scheduler = [
    dict(type=LinearLR, start_factor=1e-5, by_epoch=True, begin=0, end=warmup_ratio * max_epochs,
         convert_to_iter_based=True),
    dict(type=CosineAnnealingLR, eta_min=0.0, by_epoch=True, begin=warmup_ratio * max_epochs, end=max_epochs,
         convert_to_iter_based=True),
]

train_cfg = dict(type=TrainLoop, max_epochs=max_epochs)

#######################################################################
#                           PART 5  Runtime                           #
#######################################################################
tokenizer = dict(type=AutoTokenizer.from_pretrained, pretrained_model_name_or_path=path, trust_remote_code=True)

custom_hooks = [dict(type=DatasetInfoHook, tokenizer=tokenizer){extra_hooks}]

default_hooks = dict(
    timer=dict(type=IterTimerHook),
    logger=dict(type=LoggerHook, log_metric_by_epoch=False, interval={log_interval}),
    param_scheduler=dict(type=ParamSchedulerHook),
    checkpoint=dict(type=CheckpointHook, save_optimizer=True, by_epoch=False, interval=save_steps,
                    max_keep_ckpts=save_total_limit),
    sampler_seed=dict(type=DistSamplerSeedHook),
)

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method="fork", opencv_num_threads=0),
    dist_cfg=dict(backend="nccl"),
)

visualizer = None
log_level = "INFO"
load_from = None  # resuming: the checkpoint to continue from (course_lib writes it into a run's copy)
resume = False  # resuming: True
randomness = dict(seed={seed}, deterministic=False)
log_processor = dict(by_epoch=False)
"""


# A GPU without bfloat16 arithmetic (V100, T4, RTX 20xx: course_lib.precision): XTuner loads InternVL in bfloat16
# whatever the GPU, so the GPU recipe there also casts the frozen weights to float16 before training.
NO_BF16_IMPORT = "\nfrom course_lib.finetune.gpu_hooks import FrozenFloat16Hook\n"
NO_BF16_HOOK = ", dict(type=FrozenFloat16Hook)"


def profile_settings(profile: str, settings: Optional[dict] = None) -> dict:
    """The profile's values with a run's own settings (RUN_SETTINGS only) in place of the profile's."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {sorted(PROFILES)}, got {profile!r}")
    settings = dict(settings or {})
    unknown = sorted(set(settings) - set(RUN_SETTINGS))
    if unknown:
        raise ValueError(f"a run may change only {', '.join(RUN_SETTINGS)} of its profile, not {', '.join(unknown)}")
    for key, value in settings.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{key} must be a whole number of 1 or more, got {value!r}")
    return {**PROFILES[profile], **settings}


def render(profile: str, model_path=None, train_json=None, image_folder=None, bf16: bool = True, settings=None) -> str:
    """The config text; paths default to the profile's (the committed file), or are a run's own. bf16: whether
    the GPU that trains computes in bfloat16 (precision.gpu_has_bf16); the committed file assumes it does.
    settings: a run's own max_epochs or lora_r (RUN_SETTINGS), in place of the profile's."""
    values = profile_settings(profile, settings)
    values["r"], values["alpha"] = values["lora_r"], 2 * values["lora_r"]
    if not bf16 and values["optim_wrapper"] == "AmpOptimWrapper":
        values["custom_imports"] += NO_BF16_IMPORT
        values["extra_hooks"] += NO_BF16_HOOK
    values["model_path"] = str(model_path or values["default_model"])
    values["train_json"] = str(train_json or values["default_train_json"])
    values["image_folder"] = str(image_folder or values["default_image_folder"])
    for key in ("model_path", "train_json", "image_folder"):
        if '"' in values[key] or "\\" in values[key]:
            raise ValueError(f"{key} {values[key]!r} contains a quote or backslash; move the files to a plain path")
    return TEMPLATE.format(profile=profile, **values)


def hardware_differences() -> list:
    """(setting, real value, tiny value, why) for every setting the two profiles do not share."""
    real, tiny = PROFILES["real"], PROFILES["tiny"]
    return [(key, real[key], tiny[key], why) for key, why in DIFFERENCE_REASONS.items()]


def config_path(profile: str) -> Path:
    return REPO_ROOT / "configs" / CONFIG_FILES[profile]


def write_configs() -> list:
    written = []
    for profile in PROFILES:
        path = config_path(profile)
        path.write_text(render(profile), encoding="utf-8")
        written.append(path)
    return written
