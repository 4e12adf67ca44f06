"""The memory arithmetic behind LMDeploy's `cache_max_entry_count` and `--quant-policy`.

LMDeploy loads the weights first, then gives `cache_max_entry_count` (default 0.8) of the GPU memory that is
still free to the KV cache, cut into blocks of 64 tokens. Every token of every running conversation keeps
its keys and values there, in every layer:

    KV bytes per token = 2 (K and V) x layers x kv_heads x head_dim x bytes per value

InternVL2-2B's language model, InternLM2-chat-1.8B, has 24 layers, 8 KV heads (grouped-query attention) and
head_dim 128; in bf16 that is 2 x 24 x 8 x 128 x 2 = 98,304 bytes = 96 KiB per token, so a full 8192-token
session takes 768 MiB. `--quant-policy 8` (int8 KV) halves that and `--quant-policy 4` (int4 KV) quarters
it (plus a small per-head scale and zero point, ignored here), at a small cost in accuracy.

The same share of a GPU that already runs something else is a share of less memory; setting it too high
leaves no room for activations and the vision encoder (lmdeploy#3280: out of memory at start or under load).
"""

from dataclasses import dataclass
from typing import Sequence

from .. import internvl2_2b
from ..i18n import later, tr
from .engine import Session

GIB = 1024**3
QUANT_POLICY_BITS = {0: 16, 8: 8, 4: 4}  # --quant-policy -> bits per cached key/value
BLOCK_TOKENS = 64  # LMDeploy's cache_block_seq_len

# The defaults below are InternVL2-2B's language model, InternLM2-chat-1.8B (course_lib.internvl2_2b).
LLM = internvl2_2b.LLM


def kv_bytes_per_token(
    layers: int = LLM["layers"], kv_heads: int = LLM["kv_heads"], head_dim: int = LLM["head_dim"], bits: int = 16
) -> float:
    """Keys and values of one token, over every layer: 2 x layers x kv_heads x head_dim x bits / 8 bytes."""
    return 2 * layers * kv_heads * head_dim * bits / 8


@dataclass(frozen=True)
class CacheEstimate:
    gpu_gib: float
    weights_gib: float
    cache_max_entry_count: float
    quant_policy: int
    bytes_per_token: float
    session_len: int

    @property
    def free_gib(self) -> float:
        """GPU memory left after the weights."""
        return max(self.gpu_gib - self.weights_gib, 0.0)

    @property
    def cache_gib(self) -> float:
        return self.free_gib * self.cache_max_entry_count

    @property
    def left_gib(self) -> float:
        """What stays free for activations, the vision encoder and everything else."""
        return self.free_gib - self.cache_gib

    @property
    def tokens(self) -> int:
        """Tokens the cache holds, in whole 64-token blocks."""
        blocks = int(self.cache_gib * GIB // (self.bytes_per_token * BLOCK_TOKENS))
        return blocks * BLOCK_TOKENS

    @property
    def sessions(self) -> int:
        """Conversations that can all be at full session length at the same time."""
        return self.tokens // self.session_len

    def summary(self) -> str:
        kind = {0: "bf16/fp16", 8: "int8", 4: "int4"}[self.quant_policy]
        return (
            f"{self.gpu_gib:g} GiB GPU - {self.weights_gib:.1f} GiB weights = {self.free_gib:.1f} GiB free; "
            f"x {self.cache_max_entry_count:g} = {self.cache_gib:.1f} GiB KV cache ({kind}, "
            f"{self.bytes_per_token / 1024:g} KiB/token) = {self.tokens:,} tokens = {self.sessions} full "
            f"{self.session_len}-token sessions; {self.left_gib:.1f} GiB left for activations"
        )


def cache_memory_estimate(
    gpu_gib: float,
    weights_gib: float = None,
    cache_max_entry_count: float = 0.8,
    session_len: int = 8192,
    quant_policy: int = 0,
    layers: int = LLM["layers"],
    kv_heads: int = LLM["kv_heads"],
    head_dim: int = LLM["head_dim"],
    weight_bytes: float = 2,
    parameters: float = internvl2_2b.PARAMETERS,
) -> CacheEstimate:
    """How many tokens and sessions the KV cache holds (InternVL2-2B in bf16 by default)."""
    if not 0 < cache_max_entry_count <= 1:
        raise ValueError(f"cache_max_entry_count is a share of free GPU memory, in (0, 1]; got {cache_max_entry_count}")
    if quant_policy not in QUANT_POLICY_BITS:
        raise ValueError(f"quant_policy is 0, 8 or 4; got {quant_policy}")
    if weights_gib is None:
        weights_gib = parameters * weight_bytes / GIB
    per_token = kv_bytes_per_token(layers, kv_heads, head_dim, QUANT_POLICY_BITS[quant_policy])
    return CacheEstimate(gpu_gib, weights_gib, cache_max_entry_count, quant_policy, per_token, session_len)


def plot_cache_memory(
    gpu_gib: float = 24,
    session_len: int = 8192,
    chosen: float = 0.8,
    ratios: Sequence[float] = tuple(i / 20 for i in range(1, 20)),
    **model,
):
    """Left: where the GPU memory goes at `chosen`. Right: full sessions vs cache_max_entry_count per quant policy."""
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [1, 2.2]})
    estimate = cache_memory_estimate(gpu_gib, cache_max_entry_count=chosen, session_len=session_len, **model)
    parts = [
        (tr("weights"), estimate.weights_gib, "#8172B2"),
        (tr("KV cache"), estimate.cache_gib, "#4C72B0"),
        (tr("left free"), estimate.left_gib, "#CCCCCC"),
    ]
    bottom = 0.0
    for name, size, color in parts:
        left.bar(0, size, bottom=bottom, color=color, width=0.6)
        left.text(0, bottom + size / 2, f"{name}\n{size:.1f} GiB", ha="center", va="center", fontsize=9)
        bottom += size
    left.set_xlim(-0.6, 0.6)
    left.set_xticks([])
    left.set_ylabel("GiB")
    left.set_title(tr("{gpu:g} GiB GPU, cache_max_entry_count={chosen:g}", gpu=gpu_gib, chosen=chosen), fontsize=10)
    for policy, style in ((0, "-o"), (8, "-s"), (4, "-^")):
        sessions = [
            cache_memory_estimate(
                gpu_gib, cache_max_entry_count=r, session_len=session_len, quant_policy=policy, **model
            ).sessions
            for r in ratios
        ]
        label = {0: tr("bf16 KV (default)"), 8: "--quant-policy 8 (int8 KV)", 4: "--quant-policy 4 (int4 KV)"}[policy]
        right.plot(ratios, sessions, style, markersize=3, label=label)
    right.axvline(chosen, color="grey", lw=1, ls="--")
    right.set_xlabel(tr("cache_max_entry_count (share of free memory after the weights)"))
    right.set_ylabel(tr("full {n}-token sessions", n=session_len))
    right.set_title(tr("Conversations that fit at full length at once"), fontsize=10)
    right.legend(fontsize=8)
    fig.tight_layout()
    return fig


# ---- interactive mode: what keeping a conversation's KV cache saves ----------------------------------
@dataclass
class TurnCost:
    turn: int
    prompt_tokens: int  # what the model reads when the whole conversation is sent again (the OpenAI API, the kit)
    new_tokens: int  # what it reads when the earlier turns' keys and values are kept (LMDeploy's interactive mode)
    image_tokens: int  # of prompt_tokens, the pictures' <IMG_CONTEXT> tokens (and a vision-encoder pass each)


def tokens_per_turn(engine, turns: Sequence[tuple]) -> list:
    """Talk through `turns` ((question, image or None) each) with a transformers engine and count, per turn,
    the prompt tokens with and without the previous turns' KV cache. Each new prompt starts with the previous
    prompt plus its answer and separator, which is what a kept cache holds (checked, not assumed)."""

    def count(text: str) -> int:
        return len(engine.tokenizer(text, add_special_tokens=False).input_ids) if text else 0

    session, kept, costs = Session(), "", []
    for number, (question, image) in enumerate(turns, 1):
        prompt = engine.prompt_text(question, image, session=session)
        if not prompt.startswith(kept):
            raise ValueError(f"turn {number}'s prompt does not start with the conversation so far: no cache to keep")
        costs.append(TurnCost(number, count(prompt), count(prompt) - count(kept), prompt.count("<IMG_CONTEXT>")))
        session = engine.chat(question, image, session=session)
        kept = prompt + session.response.text + engine.sep
    return costs


def plot_tokens_per_turn(costs: Sequence[TurnCost], title: str = later("Tokens the model reads, turn by turn")):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3))
    turns = [c.turn for c in costs]
    ax.bar(
        [t - 0.2 for t in turns],
        [c.prompt_tokens for c in costs],
        width=0.4,
        color="#CCCCCC",
        label=tr("the whole conversation again"),
    )
    ax.bar(
        [t + 0.2 for t in turns],
        [c.new_tokens for c in costs],
        width=0.4,
        color="#4C72B0",
        label=tr("with the history's KV cache kept (interactive)"),
    )
    ax.set_xticks(turns)
    ax.set_xlabel(tr("turn"))
    ax.set_ylabel(tr("prompt tokens read"))
    ax.set_title(tr(title))
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return fig
