"""Will a real-mode fine-tune fit in GPU memory? An estimate of the peak per GPU, before XTuner starts.

Running out of memory is the most common complaint about fine-tuning InternVL (InternVL issues #902, #317, #434;
XTuner #526), and classroom GPUs have 16 to 80 GB. `check_run` reads a run's settings (its rendered XTuner config)
and the checkpoint's config.json, estimates the peak memory per GPU by part, compares it with the GPU's free
memory and, when it does not fit, refuses (DoesNotFit) and names settings that would fit, cheapest change first.
`estimate` is the arithmetic alone. All figures are bytes; reports print GiB (2**30 bytes).

The estimate: peak = fixed + max(vision phase, language phase) + overhead.

Fixed (memory.zero_bytes: ZeRO, Rajbhandari et al. 2020): 2 bytes a weight, 2 a trained weight's gradient, 12 its
Adam state, divided by the GPU count per ZeRO stage; plus what the recipe adds to that:
- LoRA without DeepSpeed: peft's prepare_model_for_kbit_training (called by XTuner's InternVL_V1_5) upcasts the
  language model to fp32: 2 more bytes per LLM weight. (For trained weights zero_bytes' 2 + 2 + 12 equals the
  fp32 4 + 4 + 8.) The CPU recipe trains everything in fp32 (cpu_hooks.Float32Hook): 2 more per weight.
- DeepSpeed ZeRO-1/2 (deepspeed/runtime/zero/stage_1_and_2.py setup_buckets): a reduce bucket of
  reduce_bucket_size = 5e8 elements in bf16, twice with overlap_comm (XTuner's deepspeed_zero*.json set it): 2 GB.
  ZeRO-3: one bucket, and up to stage3_max_live_parameters = 1e9 gathered weights. Several GPUs without
  DeepSpeed (DDP): a bucket copy of the gradients.

Activations: what autograd keeps for the backward pass, counted per tensor from the code that runs (InternLM2 and
InternViT as InternVL2 ships them, peft's LoRA Linear, XTuner's InternVL_V1_5 loss), in the manner of Korthikanti
et al. 2022, "Reducing Activation Recomputation in Large Transformer Models" (whose GPT layer keeps
s*b*h*(34 + 5*a*s/h) bytes). Symbols: b samples per GPU, s tokens per sample (max_length: every sample may be
that long; or the longest sample when known), t tiles per sample (max_dynamic_patch + thumbnail), T = b*t*256
image tokens, N = (448/14)^2 + 1 = 1025 vision tokens per tile; h, f, a, k, d = h/a, L, V: the LLM's hidden,
intermediate, heads, key/value heads, head width, layers, vocabulary; hv, fv, av, Lv: the vision encoder's;
r: LoRA rank. Bytes: e = 2 per compute element (fp16/bf16; 4 in the fp32 CPU recipe); rho = the residual
stream's (4 under AMP: the LLM is fp32 and fp16 + fp32 additions promote; 2 under DeepSpeed bf16); m = a LoRA
dropout mask element (1, a bool on CUDA; on a CPU dropout multiplies by a float mask: 4).

- LLM layer, no checkpointing, LoRA on wqkv, wo, w1, w3, w2 (frozen weights keep no inputs; each LoRA keeps its
  dropout mask and the input of lora_A):
      s*b*h*(8 + 4(m+e) + 3e) + s*b*f*(3e + m + e) + a*s^2*b*(4 + e) + 5*e*s*b*r
  8: two RMSNorms keep their input in fp32 (InternLM2RMSNorm upcasts); 3e: q, and k and v repeated to a heads
  (grouped-query attention, eager); 3e*s*b*f: SwiGLU's silu input and both factors; a*s^2*b*(4 + e): the
  softmax output in fp32 (softmax(..., dtype=float32)) and its fp16 copy that multiplies v. With e = 2, m = 1:
  26*s*b*h + 9*s*b*f + 6*a*s^2*b (no dropout in attention, unlike Korthikanti's 34 and 5).
  Full fine-tune instead: s*b*h*(2(4 + rho) + e(3 + [AMP]) + 3e) + 4e*s*b*f + the same attention.
  FlashAttention-2 (when the flash-attn package is installed, InternVL's code uses it) keeps q, k, v (k, v at
  k*d wide), the output and the fp32 log-sum-exp instead: e*s*b*(2h + 2k*d) + 4*a*s*b, nothing in s^2.
  Under AMP autocast also keeps a cast fp16 copy of every frozen weight a layer multiplies (autocast caches only
  fp32 leaves that require grad): e * the layer's Linear weights.
- With activation checkpointing (XTuner's InternVL_V1_5 always turns it on in the LLM; transformers' reentrant
  checkpoint): rho*s*b*h per layer, the eager 4-D attention mask rho*b*s^2 once, and during the backward pass
  one layer recomputed in full.
- Loss: the final RMSNorm 4*s*b*h, the output head's LoRA (m + e)*s*b*h, and 4*s*b*V for the log-softmax of the
  fp32 logits (InternLM2 returns logits.float()). Its peak is three fp32 copies of the logits, 12*s*b*V: the
  logits, XTuner's shifted contiguous copy and the log-softmax in the forward pass; the log-softmax, its gradient
  and the logits' gradient in the backward pass.
- mlp1 (trained in the recipe): T*(4hv*(l + e) + 2e*h), l = 4 when its LayerNorm runs in fp32 (AMP, fp32).
- Vision encoder, frozen (the recipe): keeps nothing. Trained: per tile and layer N*hv*(2l + 8e) + 2e*N*fv +
  4*av*N with FlashAttention (two LayerNorm inputs; qkv's input, q, k, v and the output; the layer scales' and
  fc1's inputs; GELU's and fc2's), or N*hv*(2l + 9e) + 2e*N*fv + av*N^2*(4 + e) eager (InternViT's own softmax,
  fp32 under AMP, and its fp16 copy; e alone under DeepSpeed); plus the pictures, e*3*448^2 per tile, for the
  patch embedding. Checkpointed (InternViT's encoder checkpoints its layers by itself): rho*N*hv per tile and
  layer.

Working memory (an assumption, not counted from code): a layer in its backward pass needs about as much again as
it keeps (the gradients of what it kept); the frozen vision encoder's forward needs about one trained layer's
activations for all b*t tiles at once. Peak of the language phase: kept activations + max(the loss's peak, the
layer in its backward pass: 2x a layer with checkpointing, 1x without).

Overhead, stated as such: 1 GiB for the CUDA context and the cuBLAS/NCCL workspaces, and 10% of the
activations for the caching allocator's fragmentation.

What is measured: tests/test_preflight.py counts the tensors autograd saves (torch.autograd.graph.saved_tensors_hooks)
in XTuner's InternVL_V1_5 forward pass of the tiny course model, and compares them with this estimate's
`saved_bytes`. Neglected: the rotary tables InternLM2 gathers per layer (2e*s*b*d), integer labels and indices.
Not modelled: DeepSpeed's CPU offload (the estimate then over-counts the optimizer state), several images per
sample, packed sequences.
"""

import importlib.util
import json
import re
import subprocess
import sys
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

from ..tables import Table
from .memory import ModelShape, zero_bytes

GIB = 2**30
CONTEXT_BYTES = GIB  # CUDA context, cuBLAS and NCCL workspaces: outside torch's allocator
FRAGMENTATION = 0.10  # of the activations: blocks the caching allocator holds but cannot reuse
DEEPSPEED_BUCKET = 500_000_000  # reduce_bucket_size's default (deepspeed/runtime/zero/config.py), in elements
ZERO3_LIVE_PARAMETERS = 1_000_000_000  # stage3_max_live_parameters' default
TEXT_MARGIN = 256  # tokens a sample needs besides its image tokens (system line, question, answer)


class DoesNotFit(RuntimeError):
    """The run's estimated peak memory is more than the GPU has free; .report holds the estimate and what fits."""

    def __init__(self, report: "Report"):
        super().__init__(report.text)
        self.report = report


@dataclass(frozen=True)
class Precision:
    """The bytes the estimate's symbols stand for, per kind of run."""

    name: str
    compute_bytes: int  # e: fp16/bf16 2, fp32 4
    residual_bytes: int  # rho: the residual stream, what a checkpoint keeps per layer, the 4-D mask
    mask_bytes: int  # m: a LoRA dropout mask element (bool on CUDA)
    autocast: bool  # AMP: frozen weights are cast (and kept) per call; norms and softmax run in fp32
    llm_weight_bytes: int  # the LLM's weights as trained (peft upcasts to fp32 for LoRA)
    weight_bytes: int  # everything else's weights


def precision_of(zero_stage: Optional[int], amp: bool, lora: bool) -> Precision:
    """XTuner's three ways: DeepSpeed (bf16 on GPUs that have it: xtuner/tools/utils.py auto_dtype_of_deepspeed_config;
    the engine casts the model), AmpOptimWrapper (fp16 autocast over bf16 weights, the LLM upcast to fp32 by peft
    for LoRA), or plain fp32 (the CPU recipe)."""
    if zero_stage is not None:
        return Precision("DeepSpeed bf16", 2, 2, 1, False, 2, 2)
    if amp:
        return Precision("AMP fp16", 2, 4, 1, True, 4 if lora else 2, 2)
    return Precision("fp32", 4, 4, 4, False, 4, 4)


@dataclass(frozen=True)
class RunSettings:
    """What a run's memory depends on, besides the model. From a rendered XTuner config: read_settings(path)."""

    batch_size: int
    max_length: int
    accumulative_counts: int = 1
    lora_r: Optional[int] = 128  # LoRA on the LLM; None: no LoRA
    lora_dropout: float = 0.05
    freeze_llm: bool = True
    freeze_vision: bool = True
    vision_lora_r: Optional[int] = None
    checkpointing: bool = True  # activation checkpointing (XTuner's InternVL_V1_5 turns it on)
    max_dynamic_patch: Optional[int] = None  # None: the checkpoint's config.json
    zero_stage: Optional[int] = None  # None: no DeepSpeed
    gpus: int = 1
    amp: bool = True  # AmpOptimWrapper (the GPU recipe); False: fp32 (the CPU recipe)
    attention: str = "eager"  # eager | flash (the flash-attn package is installed)
    sequence_tokens: Optional[int] = None  # the longest sample, when known; None: max_length
    precision: Optional[Precision] = None  # None: precision_of(zero_stage, amp, LoRA)
    source: str = ""  # where the settings come from, for messages

    def __post_init__(self):
        for name in ("batch_size", "max_length", "accumulative_counts", "gpus"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.zero_stage not in (None, 0, 1, 2, 3):
            raise ValueError(f"zero_stage is None (no DeepSpeed) or 0-3, got {self.zero_stage}")
        if self.attention not in ("eager", "flash"):
            raise ValueError(f"attention is 'eager' or 'flash', got {self.attention!r}")

    @property
    def llm_mode(self) -> str:
        """lora (peft freezes the LLM's own weights, whatever freeze_llm says), full or frozen."""
        return "lora" if self.lora_r else ("frozen" if self.freeze_llm else "full")

    @property
    def bytes(self) -> Precision:
        return self.precision or precision_of(self.zero_stage, self.amp, self.llm_mode == "lora")

    def describe(self, shape: Optional[ModelShape] = None) -> str:
        tuned = {"lora": f"LoRA r={self.lora_r}", "full": "full LLM", "frozen": "frozen LLM"}[self.llm_mode]
        if not self.freeze_vision or self.vision_lora_r:
            tuned += ", vision encoder trained"
        tiles = f", {shape.tiles(self.max_dynamic_patch)} tiles" if shape else ""
        zero = "no DeepSpeed" if self.zero_stage is None else f"DeepSpeed ZeRO-{self.zero_stage}"
        gpus = f"{self.gpus} GPU" + ("s" if self.gpus > 1 else "")
        return (
            f"{tuned}, batch {self.batch_size} x accumulate {self.accumulative_counts}, max_length {self.max_length}"
            + (f" (longest sample {self.sequence_tokens} tokens)" if self.sequence_tokens else "")
            + f"{tiles}, {zero} on {gpus}, checkpointing {'on' if self.checkpointing else 'off'}, "
            f"{self.attention} attention, {self.bytes.name}"
        )


@dataclass
class Estimate:
    """The peak memory per GPU by part (bytes), and what autograd keeps at the end of the forward pass."""

    parts: Dict[str, int]
    notes: Dict[str, str]
    kinds: Dict[str, str]  # part -> fixed | activations | overhead
    saved: Dict[str, int]  # autograd's saved tensors after the forward pass, by component (what the tests count)
    phase: str  # where the peak is

    @property
    def saved_bytes(self) -> int:
        return sum(self.saved.values())

    @property
    def total(self) -> int:
        return sum(self.parts.values())

    def sum_of(self, kind: str) -> int:
        return sum(value for part, value in self.parts.items() if self.kinds[part] == kind)

    @property
    def fixed(self) -> int:
        return self.sum_of("fixed")

    @property
    def activations(self) -> int:
        return self.sum_of("activations")

    def table(self) -> Table:
        rows = {part: {"GiB": value / GIB, "what": self.notes[part]} for part, value in self.parts.items()}
        rows["total"] = {"GiB": self.total / GIB, "what": f"peak: {self.phase}"}
        return Table(rows, [("GiB", lambda row: f"{row['GiB']:.2f}"), ("what", lambda row: row["what"])])


# ---- the arithmetic ------------------------------------------------------------------------------------


def _sequence(settings: RunSettings) -> int:
    return min(settings.max_length, settings.sequence_tokens or settings.max_length)


def _llm_layer(shape: ModelShape, settings: RunSettings, tokens: int, s: int, b: int) -> int:
    """Bytes one InternLM2 layer keeps for its backward pass (no checkpointing)."""
    p = settings.bytes
    e, rho = p.compute_bytes, p.residual_bytes
    m = p.mask_bytes if settings.lora_dropout > 0 else 0
    h, f, a, kv = shape.llm_hidden, shape.llm_intermediate, shape.llm_heads, shape.llm_kv_heads
    d = h // a
    kept = 2 * 4 * tokens * h + 2 * 4 * tokens  # the RMSNorms' fp32 inputs and rsqrt
    if settings.llm_mode == "lora":
        r = settings.lora_r
        kept += (m + e) * tokens * (4 * h + f) + 5 * e * tokens * r
        copies = shape.llm_layer_linear_parameters + r * (4 * h + f + (a + 2 * kv) * d + 2 * h + 2 * f)
    elif settings.llm_mode == "full":
        kept += 2 * rho * tokens * h + e * tokens * h * (3 + int(p.autocast)) + e * tokens * f
        copies = shape.llm_layer_linear_parameters
    else:
        copies = shape.llm_layer_linear_parameters
    kept += 3 * e * tokens * f  # silu's input, and both factors of the product
    if settings.attention == "eager":
        kept += 3 * e * tokens * h + a * s * s * b * (4 + (e if e < 4 else 0))
    else:
        kept += e * tokens * (2 * h + 2 * kv * d) + 4 * a * tokens
    if p.autocast:
        kept += e * copies
    return kept


def _llm_head(shape: ModelShape, settings: RunSettings, tokens: int) -> Tuple[int, int]:
    """(bytes kept after the forward pass, bytes at the loss's peak) of the final norm, output head and loss."""
    p = settings.bytes
    e = p.compute_bytes
    m = p.mask_bytes if settings.lora_dropout > 0 else 0
    h, vocab = shape.llm_hidden, shape.vocab_size
    kept = 4 * tokens * h + 4 * tokens
    if settings.llm_mode == "lora":
        kept += (m + e) * tokens * h + e * tokens * settings.lora_r
        copies = h * vocab + settings.lora_r * (h + vocab)
    else:
        kept += p.residual_bytes * tokens * h + e * tokens * h if settings.llm_mode == "full" else 0
        copies = h * vocab
    if p.autocast:
        kept += e * copies
    logits = 4 * tokens * vocab  # fp32
    return kept + logits, kept + 3 * logits


def _mlp1(shape: ModelShape, settings: RunSettings, image_tokens: int) -> int:
    p = settings.bytes
    e = p.compute_bytes
    norm = 4 if p.autocast or e == 4 else e
    kept = image_tokens * (shape.mlp1_in * (norm + e) + 2 * e * shape.llm_hidden) + 8 * image_tokens
    return kept + (e * (shape.mlp1_in * shape.llm_hidden + shape.llm_hidden**2) if p.autocast else 0)


def _vision_layer(shape: ModelShape, settings: RunSettings, tiles: int) -> int:
    """Bytes one InternViT layer keeps for all tiles when trained: also its working set when frozen."""
    p = settings.bytes
    e = p.compute_bytes
    norm = 4 if p.autocast or e == 4 else e
    hv, fv, av, n = shape.vision_hidden, shape.vision_intermediate, shape.vision_heads, shape.patches_per_tile
    per_tile = n * hv * (2 * norm + 8 * e) + 2 * e * n * fv + 2 * 4 * n
    if settings.attention == "eager":
        softmax = 4 if p.autocast or e == 4 else e
        per_tile += e * n * hv + av * n * n * (softmax + (e if softmax != e else 0))
    else:
        per_tile += 4 * av * n
    return tiles * per_tile + (e * shape.vision_layer_linear_parameters if p.autocast else 0)


def _fixed(shape: ModelShape, settings: RunSettings) -> Tuple[Dict[str, int], Dict[str, str]]:
    p = settings.bytes
    adapters = shape.llm_lora_parameters(settings.lora_r) if settings.llm_mode == "lora" else 0
    if settings.vision_lora_r and settings.freeze_vision:
        adapters += shape.vision_lora_parameters(settings.vision_lora_r)
    trained = shape.mlp1_parameters + adapters  # XTuner freezes nothing of mlp1
    trained += shape.llm_parameters if settings.llm_mode == "full" else 0
    trained += 0 if settings.freeze_vision else shape.vision_parameters
    frozen_and_trained = shape.parameters + adapters
    stage = settings.zero_stage or 0
    zero = zero_bytes(frozen_and_trained, trained, settings.gpus, stage)
    where = f"ZeRO-{stage} over {settings.gpus} GPU(s)" if settings.zero_stage is not None else "on every GPU"
    parts = {
        "weights": zero["weights"],
        "gradients": zero["gradients"],
        "optimizer state": zero["optimizer"],
    }
    notes = {
        "weights": f"2 bytes x {frozen_and_trained / 1e9:.3g} B parameters, {where}",
        "gradients": f"2 bytes x {trained / 1e6:.4g} M trained parameters",
        "optimizer state": "12 bytes a trained parameter (fp32 copy, Adam's two moments)",
    }
    upcast = (p.llm_weight_bytes - 2) * shape.llm_parameters + (p.weight_bytes - 2) * (
        shape.vision_parameters + shape.mlp1_parameters
    )
    if upcast:
        parts["fp32 weights"] = upcast / (settings.gpus if stage >= 3 else 1)
        notes["fp32 weights"] = (
            "2 more bytes per LLM weight: peft upcasts it to fp32 for LoRA"
            if p.weight_bytes == 2
            else "2 more bytes per weight: the fp32 recipe"
        )
    if settings.zero_stage in (1, 2):
        parts["DeepSpeed buckets"] = 2 * 2 * DEEPSPEED_BUCKET
        notes["DeepSpeed buckets"] = "2 reduce buckets of 5e8 bf16 elements (overlap_comm)"
    elif settings.zero_stage == 3:
        parts["DeepSpeed buckets"] = 2 * DEEPSPEED_BUCKET + 2 * min(ZERO3_LIVE_PARAMETERS, shape.parameters)
        notes["DeepSpeed buckets"] = "a reduce bucket of 5e8 and up to 1e9 gathered weights, bf16"
    elif settings.gpus > 1:
        parts["DDP buckets"] = zero["gradients"] * (2 if p.llm_weight_bytes == 4 else 1)
        notes["DDP buckets"] = "DistributedDataParallel's copy of the gradients"
    return {k: int(v) for k, v in parts.items()}, notes


def estimate(model: Union[ModelShape, str, Path, dict], settings: RunSettings) -> Estimate:
    """Peak memory per GPU of a run (see the module's docstring for every term and its source)."""
    shape = model if isinstance(model, ModelShape) else _shape(model)
    p = settings.bytes
    b, s = settings.batch_size, _sequence(settings)
    tokens = b * s
    tiles = b * shape.tiles(settings.max_dynamic_patch)
    image_tokens = tiles * shape.image_tokens_per_tile
    vision_trained = not settings.freeze_vision or bool(settings.vision_lora_r)
    ckpt = settings.checkpointing

    parts, notes = _fixed(shape, settings)
    kinds = {part: "fixed" for part in parts}

    def add(part: str, value: int, note: str, kind: str = "activations") -> None:
        parts[part], notes[part], kinds[part] = int(value), note, kind

    # vision encoder: what it keeps, and its working set
    vit_layer = _vision_layer(shape, settings, tiles)
    patches = p.compute_bytes * tiles * 3 * shape.image_size**2
    if not vision_trained:
        vision_kept, vision_work = 0, vit_layer
    elif ckpt:
        vision_kept = shape.vision_layers * p.residual_bytes * tiles * shape.patches_per_tile * shape.vision_hidden
        vision_kept += patches
        vision_work = 2 * vit_layer
    else:
        vision_kept, vision_work = shape.vision_layers * vit_layer + patches, vit_layer
    mlp1 = _mlp1(shape, settings, image_tokens)

    # language model
    layer = _llm_layer(shape, settings, tokens, s, b)
    mask = p.residual_bytes * b * s * s if settings.attention == "eager" else 0
    if ckpt:
        llm_kept = shape.llm_layers * p.residual_bytes * tokens * shape.llm_hidden
        layer_work = 2 * layer
    else:
        llm_kept, layer_work = shape.llm_layers * layer, layer
    head_kept, head_peak = _llm_head(shape, settings, tokens)
    saved = {
        "vision encoder": vision_kept,
        "mlp1": mlp1,
        "LLM layers": llm_kept,
        "attention mask": mask if ckpt else 0,  # kept by the checkpoints; freed after the forward pass otherwise
        "loss": head_kept,
    }

    vision_phase = vision_kept + vision_work
    language_phase = vision_kept + mlp1 + llm_kept + mask + max(head_peak, layer_work)
    if vision_phase > language_phase:
        add(
            "vision encoder",
            vision_phase,
            f"{tiles} tiles x {shape.patches_per_tile} tokens: "
            + ("its forward pass, one layer at a time (frozen)" if not vision_trained else "kept and one layer's work"),
        )
        phase = "the vision encoder"
    else:
        if vision_kept:
            add("vision encoder", vision_kept, f"{tiles} tiles, kept for its backward pass")
        add("mlp1", mlp1, f"{image_tokens} image tokens through the projector")
        add(
            "LLM layers kept",
            llm_kept,
            f"{shape.llm_layers} layers' "
            + ("inputs (checkpointing)" if ckpt else "activations")
            + f", {b} x {s} tokens",
        )
        if mask:
            add("attention mask", mask, f"eager attention's {b} x {s} x {s} mask")
        if head_peak >= layer_work:
            add("logits and loss", head_peak, f"3 fp32 copies of {b} x {s} x {shape.vocab_size} logits")
            phase = "the loss"
        else:
            add(
                "LLM layer in backward",
                layer_work,
                ("one layer recomputed, and its gradients" if ckpt else "one layer's gradients")
                + f" ({settings.attention} attention)",
            )
            phase = "the language model's backward pass"
    activations = sum(v for k, v in parts.items() if kinds[k] == "activations")
    add("CUDA context", CONTEXT_BYTES, "context, cuBLAS and NCCL workspaces (outside torch)", "overhead")
    add("fragmentation", FRAGMENTATION * activations, "10% of the activations (caching allocator)", "overhead")
    return Estimate(parts, notes, kinds, {k: int(v) for k, v in saved.items()}, phase)


def _shape(model: Union[str, Path, dict]) -> ModelShape:
    return ModelShape.from_config(model) if isinstance(model, dict) else ModelShape.from_checkpoint(model)


# ---- settings that fit ---------------------------------------------------------------------------------

# What each change costs the run, cheapest first: the same training, slower (checkpointing, a smaller batch with
# more accumulation, ZeRO), then less of each picture (tiles), then samples cut (max_length).
CHANGE_COST = {"checkpointing": 1, "batch": 2, "zero": 3, "tiles": 5, "max_length": 6}
LENGTHS = (8192, 6144, 4096, 3072, 2048, 1536, 1024)
PATCHES = (12, 9, 6, 4, 2, 1)


def _changes(shape: ModelShape, old: RunSettings, new: RunSettings) -> List[Tuple[str, str]]:
    """(knob, what to change) for every knob that differs."""
    found = []
    if new.checkpointing != old.checkpointing:
        found.append(("checkpointing", "activation checkpointing on (drop NoActivationCheckpointingHook; slower)"))
    if new.batch_size != old.batch_size:
        found.append(
            (
                "batch",
                f"batch_size = {new.batch_size}, accumulative_counts = {new.accumulative_counts} "
                f"(the same {new.batch_size * new.accumulative_counts} samples per update and GPU)",
            )
        )
    if new.zero_stage != old.zero_stage:
        found.append(
            (
                "zero",
                "no DeepSpeed"
                if new.zero_stage is None
                else f'DeepSpeed ZeRO-{new.zero_stage} (train(run, deepspeed="deepspeed_zero{new.zero_stage}"))',
            )
        )
    if new.max_dynamic_patch != old.max_dynamic_patch:
        tiles = shape.tiles(new.max_dynamic_patch)
        found.append(
            (
                "tiles",
                f"max_dynamic_patch = {new.max_dynamic_patch} ({tiles} tiles, {tiles * shape.image_tokens_per_tile} "
                "image tokens a picture at most; in the checkpoint's config.json, which XTuner's dataset reads)",
            )
        )
    if new.max_length != old.max_length:
        found.append(("max_length", f"max_length = {new.max_length} (longer samples are cut)"))
    return found


def _candidates(shape: ModelShape, settings: RunSettings):
    samples = settings.batch_size * settings.accumulative_counts
    batches = [b for b in range(settings.batch_size, 0, -1) if samples % b == 0]
    stages = [settings.zero_stage] + [z for z in (None, 1, 2, 3) if z != settings.zero_stage]
    if settings.precision is not None:
        stages = [settings.zero_stage]  # an explicit precision is a test's or a user's: keep it
    now = shape.max_dynamic_patch if settings.max_dynamic_patch is None else settings.max_dynamic_patch
    patches = [now] + [n for n in PATCHES if n < now]
    lengths = [settings.max_length] + [n for n in LENGTHS if n < settings.max_length]
    for checkpointing in (True,) if settings.checkpointing else (False, True):
        for batch in batches:
            for stage in stages:
                for patch in patches:
                    for length in lengths:
                        if length < shape.tiles(patch) * shape.image_tokens_per_tile + TEXT_MARGIN:
                            continue  # a picture's tokens would be cut (the data check refuses such records)
                        yield replace(
                            settings,
                            checkpointing=checkpointing,
                            batch_size=batch,
                            accumulative_counts=samples // batch,
                            zero_stage=stage,
                            max_dynamic_patch=patch if patch != now or settings.max_dynamic_patch else None,
                            max_length=length,
                        )


def fitting_settings(
    model: Union[ModelShape, str, Path, dict], settings: RunSettings, free_bytes: int, limit: int = 4
) -> List[Tuple[RunSettings, Estimate, List[str]]]:
    """Up to `limit` settings that the estimate says fit in free_bytes, cheapest change first: for each set of
    changed knobs the one that changes least (largest max_length, tiles, batch), and no set that holds a
    cheaper set that already fits."""
    shape = model if isinstance(model, ModelShape) else _shape(model)
    best: Dict[frozenset, Tuple[tuple, RunSettings, Estimate, List[str]]] = {}
    for candidate in _candidates(shape, settings):
        changes = _changes(shape, settings, candidate)
        if not changes:
            continue
        guess = estimate(shape, candidate)
        if guess.total > free_bytes:
            continue
        knobs = frozenset(knob for knob, _ in changes)
        rank = (
            sum(CHANGE_COST[k] for k in knobs),
            -candidate.max_length,
            -shape.tiles(candidate.max_dynamic_patch),
            -1 if candidate.zero_stage is None else candidate.zero_stage,
            -candidate.batch_size,
            guess.total,
        )
        if knobs not in best or rank < best[knobs][0]:
            best[knobs] = (rank, candidate, guess, [text for _, text in changes])
    chosen, taken = [], []
    for knobs, (rank, candidate, guess, texts) in sorted(best.items(), key=lambda item: item[1][0]):
        if any(earlier <= knobs for earlier in taken):
            continue
        taken.append(knobs)
        chosen.append((candidate, guess, texts))
        if len(chosen) == limit:
            break
    return chosen


# ---- the report ------------------------------------------------------------------------------------------


@dataclass
class Report:
    """A run's estimate against the GPU's free memory; prints as a table in GiB."""

    model: ModelShape
    settings: RunSettings
    estimate: Estimate
    free_bytes: int
    alternatives: List[Tuple[RunSettings, Estimate, List[str]]] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return self.estimate.total <= self.free_bytes

    @property
    def text(self) -> str:
        total, free = self.estimate.total / GIB, self.free_bytes / GIB
        verdict = "fits" if self.fits else "does NOT fit"
        lines = [
            f"Memory pre-flight for {self.model.name}"
            + (f" ({self.settings.source})" if self.settings.source else "")
            + f": {self.settings.describe(self.model)}",
            str(self.estimate.table()),
            f"free on the GPU: {free:.2f} GiB -> the run {verdict} ({total:.2f} GiB estimated, GiB = 2**30 bytes)",
        ]
        if not self.fits:
            if self.alternatives:
                lines.append("Settings the estimate says fit, cheapest change first:")
                for number, (_, guess, texts) in enumerate(self.alternatives, 1):
                    lines.append(f"  {number}. {'; '.join(texts)}: {guess.total / GIB:.2f} GiB")
                lines.append(
                    "batch_size, accumulative_counts and max_length are in PART 1 of the run's config; pass "
                    "go_on=True to try anyway (the estimate is an estimate)."
                )
            else:
                lines.append(
                    "No change of batch size, max_length, tiles, ZeRO stage or checkpointing fits: use a GPU with "
                    "more free memory, more GPUs with ZeRO-3, or pass go_on=True to try anyway."
                )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.text

    __repr__ = __str__

    def _repr_pretty_(self, printer, cycle):
        printer.text(self.text)


# ---- reading a run and the GPU ---------------------------------------------------------------------------


def _type_name(value) -> str:
    return getattr(value, "__name__", None) or str(value)


def read_settings(config: Union[str, Path]) -> RunSettings:
    """A rendered XTuner config's settings, read as XTuner reads it (mmengine's Config.fromfile)."""
    from mmengine.config import Config

    path = Path(config)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: give the run's XTuner config (run.config)")
    cfg = Config.fromfile(str(path))
    model = cfg.get("model") or {}
    loader = cfg.get("train_dataloader") or {}
    optim = cfg.get("optim_wrapper") or {}
    lora = model.get("llm_lora")
    vision_lora = model.get("visual_encoder_lora")
    dataset = loader.get("dataset") or {}
    max_length = dataset.get("max_length", cfg.get("max_length"))
    if loader.get("batch_size") is None or max_length is None:
        raise ValueError(f"{path}: no train_dataloader.batch_size or max_length; is it an XTuner InternVL config?")
    hooks = [_type_name(hook.get("type")) for hook in cfg.get("custom_hooks") or []]
    wrapper = _type_name(optim.get("type"))
    return RunSettings(
        batch_size=int(loader["batch_size"]),
        max_length=int(max_length),
        accumulative_counts=int(optim.get("accumulative_counts", 1)),
        lora_r=int(lora["r"]) if lora else None,
        lora_dropout=float(lora.get("lora_dropout", 0.0)) if lora else 0.0,
        freeze_llm=bool(model.get("freeze_llm", False)),
        freeze_vision=bool(model.get("freeze_visual_encoder", False)),
        vision_lora_r=int(vision_lora["r"]) if vision_lora else None,
        # xtuner/model/internvl.py turns checkpointing on in __init__; the CPU recipe's hook turns it off
        checkpointing=not any("NoActivationCheckpointingHook" in name for name in hooks),
        amp="AmpOptimWrapper" in wrapper or "DeepSpeed" in wrapper,
        source=str(path),
    )


def zero_stage_of(deepspeed: Optional[str]) -> Optional[int]:
    """The ZeRO stage of train()'s deepspeed argument: XTuner's name (deepspeed_zero2) or a JSON file; None: none."""
    if not deepspeed:
        return None
    path = Path(deepspeed)
    if path.is_file():
        return int(json.loads(path.read_text(encoding="utf-8")).get("zero_optimization", {}).get("stage", 0))
    match = re.search(r"zero(\d)", str(deepspeed))
    if not match:
        raise ValueError(f"deepspeed={deepspeed!r}: neither a JSON file nor XTuner's deepspeed_zero1/2/3 name")
    return int(match.group(1))


def synthetic_batch(model, batch: int, length: int, tiles: int = 1, device="cpu") -> dict:
    """A training batch of XTuner's InternVL_V1_5 (`model`) with the shapes a run's memory depends on: `batch`
    samples of `length` tokens, `tiles` pictures' worth of image tokens each, seeded random content. For measuring
    memory against the estimate (tests on the CPU, the device check on a GPU), not for learning."""
    import torch

    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(10, 1000, (batch, length), generator=generator)
    ids[:, 5 : 5 + 256 * tiles] = model.model.img_context_token_id
    return {
        "pixel_values": [torch.randn(tiles, 3, 448, 448, generator=generator).to(device) for _ in range(batch)],
        "input_ids": ids.to(device),
        "position_ids": torch.arange(length)[None].expand(batch, length).to(device),
        "attention_mask": torch.ones(batch, length, dtype=torch.bool, device=device),
        "labels": ids.clone().to(device),
    }


def free_gpu_bytes(gpus: int = 1) -> int:
    """The least free memory among the first `gpus` CUDA devices (torch.cuda.mem_get_info).

    Asked in a child process unless this one already uses CUDA: a CUDA context made here (about 0.5 GB) would stay
    held by the notebook while XTuner trains in its own process."""
    import torch

    if torch.cuda.is_initialized():
        return min(torch.cuda.mem_get_info(index)[0] for index in range(gpus))
    code = (
        "import sys, torch\n"
        "n = int(sys.argv[1])\n"
        "print(min(torch.cuda.mem_get_info(i)[0] for i in range(n)) if torch.cuda.device_count() >= n else -1)"
    )
    done = subprocess.run([sys.executable, "-c", code, str(gpus)], capture_output=True, text=True, timeout=300)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines or int(lines[-1]) < 0:
        raise RuntimeError(
            f"could not read the free memory of {gpus} CUDA GPU(s) (torch sees {torch.cuda.device_count()}): "
            f"pass free_bytes= yourself. {done.stderr.strip()[-300:]}"
        )
    return int(lines[-1])


def check_run(
    config_path_or_settings: Union[str, Path, RunSettings],
    model_path: Union[str, Path],
    gpus: int = 1,
    zero_stage: Optional[int] = None,
    free_bytes: Optional[int] = None,
    go_on: bool = False,
    attention: Optional[str] = None,
    sequence_tokens: Optional[int] = None,
) -> Report:
    """Estimate a run's peak memory per GPU and compare it with the GPU's free memory.

    gpus and zero_stage (None: no DeepSpeed) are how the run will be launched; they replace the settings'.
    free_bytes: the GPU's free memory (default: asked of the GPU). attention: eager or flash (default: flash when
    the flash-attn package is installed, as InternVL's code then uses it). sequence_tokens: the longest sample in
    tokens, when known (default: max_length). Returns the Report when the run fits; otherwise raises DoesNotFit,
    whose message shows the estimate and names settings that fit, unless go_on=True: then it warns and returns.
    """
    if isinstance(config_path_or_settings, RunSettings):
        settings = config_path_or_settings
    else:
        settings = read_settings(config_path_or_settings)
    if attention is None:
        attention = "flash" if importlib.util.find_spec("flash_attn") else "eager"
    settings = replace(settings, gpus=gpus, zero_stage=zero_stage, attention=attention)
    if sequence_tokens is not None:
        settings = replace(settings, sequence_tokens=sequence_tokens)
    shape = ModelShape.from_checkpoint(model_path)
    guess = estimate(shape, settings)
    free = free_gpu_bytes(gpus) if free_bytes is None else int(free_bytes)
    report = Report(shape, settings, guess, free)
    if report.fits:
        return report
    report.alternatives = fitting_settings(shape, settings, free)
    if go_on:
        warnings.warn(report.text, RuntimeWarning, stacklevel=2)
        return report
    raise DoesNotFit(report)
