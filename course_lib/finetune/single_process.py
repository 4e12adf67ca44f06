"""An mmengine hook the tiny (CPU) XTuner config registers: a one-process gloo group for a single CPU process.

XTuner's InternVL_V1_5 calls torch.distributed.get_rank() in every forward pass, which fails unless a
process group exists. A single CPU process has none (XTuner's `--launcher pytorch` needs CUDA), so the hook
starts a one-process gloo group when the runner builds it. It changes nothing when a group already exists.
"""
import os
import tempfile

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
