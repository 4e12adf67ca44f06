"""What a fine-tune keeps in GPU memory besides activations: weights, gradients and Adam's states, with LoRA
or without, and how DeepSpeed ZeRO's stages divide them between GPUs.

Mixed-precision Adam (Rajbhandari et al., ZeRO, SC 2020, section 3.1): per parameter 2 bytes of fp16/bf16
weights; per trained parameter 2 bytes of gradients and 12 of optimizer state (an fp32 copy, momentum,
variance). ZeRO-1 splits the optimizer state over N GPUs, ZeRO-2 the gradients too, ZeRO-3 the weights too.
Activations come on top: they grow with batch size x sequence length, which is why batch size is the knob
when memory runs out (with gradient accumulation to keep the effective batch).
"""

from typing import Dict

from .. import internvl2_2b
from ..connectors import internvl_mlp1, meta_count

GB = 1e9
WEIGHT_BYTES, GRADIENT_BYTES, OPTIMIZER_BYTES = 2, 2, 12


def lora_parameters(
    r: int, layers: int, hidden: int, intermediate: int, heads: int, kv_heads: int, head_dim: int
) -> int:
    """LoRA's trainable parameters on InternLM2's wqkv, wo, w1, w2, w3: r x (in + out) for each Linear(in, out)."""
    qkv = (heads + 2 * kv_heads) * head_dim
    shapes = [
        (hidden, qkv),
        (heads * head_dim, hidden),
        (hidden, intermediate),
        (intermediate, hidden),
        (hidden, intermediate),
    ]
    return layers * sum(r * (fan_in + fan_out) for fan_in, fan_out in shapes)


def zero_memory(parameters: float, trainable: float, gpus: int = 1, stage: int = 0) -> Dict[str, float]:
    """Bytes per GPU for weights, gradients and optimizer state under ZeRO stage 0-3, in GB, and their total."""
    if stage not in (0, 1, 2, 3):
        raise ValueError(f"ZeRO stage is 0, 1, 2 or 3, got {stage}")
    if gpus < 1:
        raise ValueError(f"gpus must be at least 1, got {gpus}")
    weights = WEIGHT_BYTES * parameters / (gpus if stage >= 3 else 1)
    gradients = GRADIENT_BYTES * trainable / (gpus if stage >= 2 else 1)
    optimizer = OPTIMIZER_BYTES * trainable / (gpus if stage >= 1 else 1)
    parts = {"weights": weights / GB, "gradients": gradients / GB, "optimizer": optimizer / GB}
    return {**parts, "total": sum(parts.values())}


def internvl2_2b_setups(r: int = 128) -> Dict[str, Dict[str, float]]:
    """The memory before activations of fine-tuning InternVL2-2B: full, or LoRA r (plus mlp1) as the course does."""
    llm = {key: value for key, value in internvl2_2b.LLM.items() if key != "vocab_size"}
    mlp1 = meta_count(internvl_mlp1, internvl2_2b.VISION["hidden"], llm["hidden"], internvl2_2b.DOWNSAMPLE_RATIO)
    lora = lora_parameters(r, **llm) + mlp1
    full = internvl2_2b.PARAMETERS
    return {
        "full fine-tune, 1 GPU": zero_memory(full, full),
        "full fine-tune, 2 GPUs, ZeRO-2": zero_memory(full, full, gpus=2, stage=2),
        "full fine-tune, 2 GPUs, ZeRO-3": zero_memory(full, full, gpus=2, stage=3),
        f"LoRA r={r} + mlp1, 1 GPU": zero_memory(full, lora),
    }


def plot_memory(setups: Dict[str, Dict[str, float]] = None, title: str = "GPU memory before activations"):
    import matplotlib.pyplot as plt

    setups = setups or internvl2_2b_setups()
    fig, ax = plt.subplots(figsize=(9, 0.6 * len(setups) + 1.2))
    names = list(setups)
    left = [0.0] * len(names)
    for part, colour in (("weights", "#4C72B0"), ("gradients", "#DD8452"), ("optimizer", "#C44E52")):
        values = [setups[name][part] for name in names]
        ax.barh(names, values, left=left, color=colour, label=part)
        left = [a + b for a, b in zip(left, values)]
    for index, name in enumerate(names):
        ax.text(left[index], index, f" {setups[name]['total']:.1f} GB", va="center", fontsize=9)
    ax.invert_yaxis()
    ax.set_xlabel("GB per GPU (activations come on top)")
    ax.set_xlim(0, max(left) * 1.2)
    ax.legend(loc="lower right", frameon=False)
    ax.set_title(title)
    fig.tight_layout()
    return fig
