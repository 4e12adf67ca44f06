"""Which floating-point precision a device computes in: bfloat16 where the GPU has it, float16 where it does not,
float32 on a CPU. One rule for the transformers backend, LMDeploy's engine config and the training recipe.

bfloat16 has float32's exponent range, so it rarely overflows, and InternVL2 is published in it; but only GPUs
of compute capability 8.0 and up (Ampere: A100, A10, RTX 30xx; later: L4, L40, H100, H200) compute in it.
V100 (7.0), T4 (7.5) and RTX 20xx (7.5) do not (InternVL#260, #144, #788; lmdeploy#2067): there the model runs in
float16, which InternVL2-2B's weights fit (their largest magnitudes are far below float16's 65,504).

Note that `torch.cuda.is_bf16_supported()` with its default `including_emulation=True` answers True on a V100 or
a T4 (it can store a bfloat16 tensor there). The question here is whether the GPU computes in bfloat16, so the
kit asks with `including_emulation=False`, which is the compute-capability test.
"""

from dataclasses import dataclass
from typing import Optional

from .i18n import tr

BF16_MIN_CAPABILITY = (8, 0)


@dataclass(frozen=True)
class Precision:
    name: str  # "bfloat16", "float16" or "float32"
    reason: str

    @property
    def dtype(self):
        import torch

        return getattr(torch, self.name)

    @property
    def short(self) -> str:
        """LMDeploy's and XTuner's spelling: bf16, fp16, fp32."""
        return {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}[self.name]


def gpu_has_bf16(device: str = "cuda") -> bool:
    """Whether the CUDA device computes in bfloat16 natively (compute capability 8.0 or higher)."""
    import torch

    if not torch.cuda.is_available():
        return False
    index = torch.device(device).index
    with torch.cuda.device(index if index is not None else torch.cuda.current_device()):
        return torch.cuda.is_bf16_supported(including_emulation=False)


def gpu_name(device: str = "cuda") -> str:
    import torch

    index = torch.device(device).index
    return torch.cuda.get_device_name(index if index is not None else torch.cuda.current_device())


def choose(device: str, bf16: Optional[bool] = None, gpu: Optional[str] = None) -> Precision:
    """The precision for `device` ("cpu", "cuda", "cuda:1").

    bf16: whether the GPU computes in bfloat16; None asks the GPU (`gpu_has_bf16`). Passing it makes the GPU's
    answer explicit, so the rule is tested on any machine. gpu: the GPU's name for the reason (None asks it).
    """
    if not str(device).startswith("cuda"):
        return Precision("float32", tr("a CPU computes in float32 (bfloat16 and float16 are slow or missing there)"))
    if bf16 is None:
        bf16 = gpu_has_bf16(device)
    if gpu is None:
        gpu = gpu_name(device) if cuda_available() else tr("this GPU")
    if bf16:
        return Precision("bfloat16", tr("{gpu} computes in bfloat16 (compute capability 8.0 or higher)", gpu=gpu))
    return Precision(
        "float16",
        tr(
            "{gpu} has no bfloat16 arithmetic (compute capability below 8.0, e.g. V100, T4, RTX 20xx): float16 instead",
            gpu=gpu,
        ),
    )


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()
