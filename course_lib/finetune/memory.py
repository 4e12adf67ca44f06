"""What a fine-tune keeps in GPU memory besides activations: weights, gradients and Adam's states, with LoRA
or without, and how DeepSpeed ZeRO's stages divide them between GPUs.

Mixed-precision Adam (Rajbhandari et al., ZeRO, SC 2020, section 3.1): per parameter 2 bytes of fp16/bf16
weights; per trained parameter 2 bytes of gradients and 12 of optimizer state (an fp32 copy, momentum,
variance). ZeRO-1 splits the optimizer state over N GPUs, ZeRO-2 the gradients too, ZeRO-3 the weights too.
Activations come on top: they grow with batch size x sequence length, which is why batch size is the knob
when memory runs out (with gradient accumulation to keep the effective batch); finetune.preflight estimates them.

ModelShape reads the sizes these counts need from a checkpoint's config.json, so that the same arithmetic
serves InternVL2-2B and the kit's tiny model.
"""

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Union

from .. import internvl2_2b
from ..connectors import internvl_mlp1, meta_count
from ..i18n import later, tr

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


def zero_bytes(parameters: float, trainable: float, gpus: int = 1, stage: int = 0) -> Dict[str, float]:
    """Bytes per GPU for weights, gradients and optimizer state under ZeRO stage 0-3, and their total."""
    if stage not in (0, 1, 2, 3):
        raise ValueError(f"ZeRO stage is 0, 1, 2 or 3, got {stage}")
    if gpus < 1:
        raise ValueError(f"gpus must be at least 1, got {gpus}")
    weights = WEIGHT_BYTES * parameters / (gpus if stage >= 3 else 1)
    gradients = GRADIENT_BYTES * trainable / (gpus if stage >= 2 else 1)
    optimizer = OPTIMIZER_BYTES * trainable / (gpus if stage >= 1 else 1)
    parts = {"weights": weights, "gradients": gradients, "optimizer": optimizer}
    return {**parts, "total": sum(parts.values())}


def zero_memory(parameters: float, trainable: float, gpus: int = 1, stage: int = 0) -> Dict[str, float]:
    """zero_bytes in GB (10^9 bytes), as the lesson's figure draws them."""
    return {part: value / GB for part, value in zero_bytes(parameters, trainable, gpus, stage).items()}


def _field(config: dict, key: str, where: str, default=None):
    if key in config:
        return config[key]
    if default is not None:
        return default
    raise KeyError(
        f"{where} has no {key!r}: give the folder of an InternVL2 checkpoint (its config.json has vision_config, "
        "llm_config, downsample_ratio and max_dynamic_patch)"
    )


@dataclass(frozen=True)
class ModelShape:
    """The sizes of an InternVL2 checkpoint that its memory depends on, from its config.json.

    Vision: InternViT (layers of LayerNorm/RMSNorm, packed qkv, proj, fc1-GELU-fc2, layer scales); mlp1:
    LayerNorm, Linear, GELU, Linear on pixel-shuffled features; language model: InternLM2 (packed wqkv with
    grouped-query heads, wo, SwiGLU w1/w3/w2, RMSNorm; tok_embeddings and an untied output head).
    """

    name: str
    vision_layers: int
    vision_hidden: int
    vision_intermediate: int
    vision_heads: int
    image_size: int
    patch_size: int
    vision_qkv_bias: bool
    vision_norm: str  # layer_norm | rms_norm
    vision_qk_norm: bool
    llm_layers: int
    llm_hidden: int
    llm_intermediate: int
    llm_heads: int
    llm_kv_heads: int
    vocab_size: int
    llm_bias: bool
    downsample_ratio: float
    max_dynamic_patch: int
    use_thumbnail: bool

    @classmethod
    def from_config(cls, config: dict, name: str = "model") -> "ModelShape":
        where = f"config.json of {name}"
        vision = _field(config, "vision_config", where)
        llm = _field(config, "llm_config", where)
        vwhere, lwhere = f"vision_config in the {where}", f"llm_config in the {where}"
        heads = _field(llm, "num_attention_heads", lwhere)
        return cls(
            name=name,
            vision_layers=_field(vision, "num_hidden_layers", vwhere),
            vision_hidden=_field(vision, "hidden_size", vwhere),
            vision_intermediate=_field(vision, "intermediate_size", vwhere),
            vision_heads=_field(vision, "num_attention_heads", vwhere),
            image_size=config.get("force_image_size") or _field(vision, "image_size", vwhere),
            patch_size=_field(vision, "patch_size", vwhere),
            vision_qkv_bias=bool(vision.get("qkv_bias", True)),
            vision_norm=vision.get("norm_type", "rms_norm"),
            vision_qk_norm=bool(vision.get("qk_normalization", False)),
            llm_layers=_field(llm, "num_hidden_layers", lwhere),
            llm_hidden=_field(llm, "hidden_size", lwhere),
            llm_intermediate=_field(llm, "intermediate_size", lwhere),
            llm_heads=heads,
            llm_kv_heads=llm.get("num_key_value_heads") or heads,
            vocab_size=_field(llm, "vocab_size", lwhere),
            llm_bias=bool(llm.get("bias", False)),
            downsample_ratio=_field(config, "downsample_ratio", where),
            max_dynamic_patch=_field(config, "max_dynamic_patch", where),
            use_thumbnail=bool(config.get("use_thumbnail", True)),
        )

    @classmethod
    def from_checkpoint(cls, path: Union[str, Path]) -> "ModelShape":
        """From a checkpoint folder (or its config.json)."""
        path = Path(path)
        file = path / "config.json" if path.is_dir() else path
        if not file.is_file():
            raise FileNotFoundError(f"{file} does not exist: give the checkpoint folder that holds config.json")
        return cls.from_config(json.loads(file.read_text(encoding="utf-8")), name=file.parent.name)

    # ---- tokens ------------------------------------------------------------------------------------
    @property
    def patches_per_tile(self) -> int:
        """Tokens in the vision encoder per 448x448 tile: (448/14)^2 = 1024 patches and the CLS token."""
        return (self.image_size // self.patch_size) ** 2 + 1

    @property
    def image_tokens_per_tile(self) -> int:
        """Tokens a tile becomes in the language model: pixel shuffle keeps downsample_ratio^2 of 1024 (256)."""
        return int((self.image_size // self.patch_size) ** 2 * self.downsample_ratio**2)

    def tiles(self, max_dynamic_patch: Optional[int] = None) -> int:
        """Tiles of the largest picture: max_dynamic_patch, plus the thumbnail when there is more than one."""
        patches = self.max_dynamic_patch if max_dynamic_patch is None else max_dynamic_patch
        return patches + (1 if self.use_thumbnail and patches > 1 else 0)

    # ---- parameters --------------------------------------------------------------------------------
    @property
    def vision_layer_linear_parameters(self) -> int:
        h, f = self.vision_hidden, self.vision_intermediate
        return 3 * h * h + h * h + 2 * h * f

    @property
    def vision_parameters(self) -> int:
        h, f, patches = self.vision_hidden, self.vision_intermediate, self.patches_per_tile
        norms = (4 if self.vision_norm == "layer_norm" else 2) * h + (2 * h if self.vision_qk_norm else 0)
        biases = (3 * h if self.vision_qkv_bias else 0) + h + f + h
        layer = self.vision_layer_linear_parameters + biases + norms + 2 * h  # ls1, ls2
        embeddings = 3 * self.patch_size**2 * h + h + h + patches * h  # patch conv and bias, CLS, positions
        return embeddings + self.vision_layers * layer

    @property
    def mlp1_in(self) -> int:
        return self.vision_hidden * int(round(1 / self.downsample_ratio)) ** 2

    @property
    def mlp1_parameters(self) -> int:
        width, h = self.mlp1_in, self.llm_hidden
        return 2 * width + width * h + h + h * h + h

    @property
    def llm_layer_linear_parameters(self) -> int:
        """wqkv, wo, w1, w3 and w2 of one InternLM2 layer."""
        h, f, d = self.llm_hidden, self.llm_intermediate, self.llm_hidden // self.llm_heads
        return h * (self.llm_heads + 2 * self.llm_kv_heads) * d + self.llm_heads * d * h + 3 * h * f

    @property
    def llm_parameters(self) -> int:
        h, d = self.llm_hidden, self.llm_hidden // self.llm_heads
        biases = ((self.llm_heads + 2 * self.llm_kv_heads) * d + h) if self.llm_bias else 0
        layer = self.llm_layer_linear_parameters + biases + 2 * h  # two RMSNorms
        return 2 * self.vocab_size * h + self.llm_layers * layer + h  # embeddings, output head, final norm

    @property
    def parameters(self) -> int:
        return self.vision_parameters + self.mlp1_parameters + self.llm_parameters

    def llm_lora_parameters(self, r: int) -> int:
        """LoRA r on every Linear of InternLM2, as XTuner's target_modules=None picks them
        (xtuner/model/utils.py find_all_linear_names: wqkv, wo, w1, w2, w3 and the output head, which is
        called `output`, not `lm_head`): r x (in + out) each."""
        h, d = self.llm_hidden, self.llm_hidden // self.llm_heads
        layer = lora_parameters(
            r, 1, h, self.llm_intermediate, self.llm_heads, self.llm_kv_heads, d
        )  # one layer's five Linears
        return self.llm_layers * layer + r * (h + self.vocab_size)

    def vision_lora_parameters(self, r: int) -> int:
        """LoRA r on InternViT's qkv, proj, fc1 and fc2."""
        h, f = self.vision_hidden, self.vision_intermediate
        return self.vision_layers * r * ((h + 3 * h) + (h + h) + (h + f) + (f + h))


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


def _setup_label(name: str) -> str:
    """A setup's name (internvl2_2b_setups' keys) as the plot shows it, in the lesson's language."""
    lora = re.fullmatch(r"LoRA r=(\d+) \+ mlp1, 1 GPU", name)
    if lora:
        return tr("LoRA r={r} + mlp1, 1 GPU", r=lora.group(1))
    full = {
        "full fine-tune, 1 GPU": tr("full fine-tune, 1 GPU"),
        "full fine-tune, 2 GPUs, ZeRO-2": tr("full fine-tune, 2 GPUs, ZeRO-2"),
        "full fine-tune, 2 GPUs, ZeRO-3": tr("full fine-tune, 2 GPUs, ZeRO-3"),
    }
    return full.get(name, name)


def plot_memory(setups: Dict[str, Dict[str, float]] = None, title: str = later("GPU memory before activations")):
    import matplotlib.pyplot as plt

    setups = setups or internvl2_2b_setups()
    fig, ax = plt.subplots(figsize=(9, 0.6 * len(setups) + 1.2))
    names = list(setups)
    left = [0.0] * len(names)
    labels = [_setup_label(name) for name in names]
    for part, word, colour in (
        ("weights", tr("weights"), "#4C72B0"),
        ("gradients", tr("gradients"), "#DD8452"),
        ("optimizer", tr("optimizer"), "#C44E52"),
    ):
        values = [setups[name][part] for name in names]
        ax.barh(labels, values, left=left, color=colour, label=word)
        left = [a + b for a, b in zip(left, values)]
    for index, name in enumerate(names):
        ax.text(left[index], index, f" {setups[name]['total']:.1f} GB", va="center", fontsize=9)
    ax.invert_yaxis()
    ax.set_xlabel(tr("GB per GPU (activations come on top)"))
    ax.set_xlim(0, max(left) * 1.2)
    ax.legend(loc="lower right", frameon=False)
    ax.set_title(tr(title))
    fig.tight_layout()
    return fig
