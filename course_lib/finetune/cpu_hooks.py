"""mmengine hooks the tiny (CPU) XTuner config registers: what one CPU process needs that a GPU run has.

- SingleProcessGroupHook: XTuner's InternVL_V1_5 calls torch.distributed.get_rank() in every forward pass,
  which fails unless a process group exists. A single CPU process has none (XTuner's `--launcher pytorch`
  needs CUDA), so the hook starts a one-process gloo group when the runner builds it. It changes nothing
  when a group already exists.
- Float32Hook: XTuner loads InternVL in bfloat16. peft turns the language model to float32 for LoRA, but
  mlp1 (trained) and the vision encoder (frozen) stay bfloat16; with no AMP on a CPU, an AdamW step on a
  bfloat16 weight is mostly rounded away (8 bits of mantissa: a change under 1/256 of the weight is lost),
  so mlp1 barely learned. The hook makes every weight float32 after the optimizer is built (the same
  Parameter objects, so the optimizer keeps them) and before a checkpoint is loaded to resume.
- IterationSeedHook: mmengine's resume restores the weights, the optimizer, the schedule and the position in
  the data, but not the random number generators, so LoRA's dropout drew other masks after a resume and the
  resumed run ended a few questions away from the uninterrupted one. The hook seeds the generators from
  (the run's seed, the iteration) before every iteration: iteration i draws the same masks whether the run
  got there in one go or after a resume, so the two runs end with the same weights.
- NoActivationCheckpointingHook: XTuner's InternVL_V1_5 always turns on activation checkpointing in the
  language model: the backward pass recomputes each layer's forward pass instead of keeping its activations,
  which saves GPU memory. A CPU run is short of minutes, not memory: with it off, a tiny-model iteration
  (4 samples) took 0.60 s instead of 0.92 s on 2 cores. The weights it learns are the same.
"""

import os
import random
import tempfile

import numpy as np
import torch
import torch.distributed as dist
from mmengine.hooks import Hook


def ensure_single_process_group() -> None:
    if dist.is_available() and not dist.is_initialized():
        store = tempfile.NamedTemporaryFile(prefix="course-kit-gloo-", delete=False)
        store.close()
        os.unlink(store.name)  # the file store must not exist yet
        dist.init_process_group("gloo", init_method=f"file://{store.name}", rank=0, world_size=1)


class SingleProcessGroupHook(Hook):
    priority = "VERY_HIGH"

    def __init__(self):
        ensure_single_process_group()  # hooks are built with the runner, before any forward pass

    def before_run(self, runner) -> None:
        ensure_single_process_group()


def to_float32(model: torch.nn.Module) -> int:
    """Cast bfloat16/float16 parameters and buffers to float32 in place; returns how many parameters changed."""
    changed = sum(p.numel() for p in model.parameters() if p.dtype in (torch.bfloat16, torch.float16))
    model.float()  # nn.Module.float() replaces .data: Parameter objects (and the optimizer's references) stay
    return changed


class Float32Hook(Hook):
    priority = "VERY_HIGH"

    def before_run(self, runner) -> None:  # mmengine: after the optimizer is built, before load_or_resume
        model = runner.model.module if hasattr(runner.model, "module") else runner.model
        changed = to_float32(model)
        runner.logger.info(f"Float32Hook: {changed} bfloat16 parameters now train in float32 (CPU, no AMP)")


def iteration_seed(seed: int, iteration: int) -> int:
    return (int(seed) * 1_000_003 + int(iteration)) % 2**32


class IterationSeedHook(Hook):
    priority = "VERY_HIGH"

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        seed = iteration_seed(runner.seed, runner.iter)
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)  # CUDA's generators too


class NoActivationCheckpointingHook(Hook):
    priority = "VERY_HIGH"

    def before_run(self, runner) -> None:
        model = runner.model.module if hasattr(runner.model, "module") else runner.model
        model.gradient_checkpointing_disable()
        runner.logger.info("NoActivationCheckpointingHook: activation checkpointing is off (CPU: time, not memory)")
