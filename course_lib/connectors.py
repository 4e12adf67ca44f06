"""How image features enter a language model: where they go in the sequence, and what maps them there.

Where (all three end with one tensor of input embeddings the LLM reads instead of token ids):

* BLIP-2 / MiniGPT-4: an **absolute prefix**. The image embeddings go before the text embeddings; the
  attention mask grows by the prefix and the labels get -100 there (no loss on image positions).
  Simple, but the image is always first and there is one image per sample.
* MiniGPT4Qwen: a **placeholder**. The prompt carries a rarely used token repeated once per image token;
  ``torch.where`` finds those positions and the image rows are written there, so images may sit anywhere,
  several per prompt, without new vocabulary.
* InternVL2: the same replacement with dedicated special tokens: each image becomes
  ``<img>`` + ``<IMG_CONTEXT>`` x (256 per tile) + ``</img>`` in the prompt string.

What (the projector, or connector, between vision width and LLM width):

* MiniGPT-4: a frozen BLIP-2 Q-Former gives 32 query tokens of width 768; one trained Linear(768, llm).
* LLaVA: one Linear(vision, llm). LLaVA-1.5: Linear, GELU, Linear.
* InternVL2: pixel shuffle (2x2 patches -> one token with 4x channels), then
  mlp1 = LayerNorm, Linear, GELU, Linear.
* BLIP-2: a Q-Former (12 BERT-style layers, cross-attention to the ViT every 2nd layer, 32 learned
  queries) plus a Linear into the LLM: about 100M trainable parameters, against a few million for an MLP.
  The lecture's argument for the MLP: far fewer parameters, faster convergence, and no clear gain.

Parameter counts at real sizes are computed on torch's meta device: shapes only, no memory.
"""

import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from .i18n import later, tr
from .internvl_format import (
    IMAGE_TAG,
    INTERNLM2_CHAT,
    expand_image_tags,
    image_tokens,
    with_image_tag,
)
from .pixel_shuffle import pixel_shuffle

IGNORE_INDEX = -100


# ---- 1. BLIP-2: the image as an absolute prefix ------------------------------------------------------
def prepend_image_prefix(
    image_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    attention_mask: torch.Tensor,
    labels: Optional[torch.Tensor] = None,
) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
    """(B, Q, C) image + (B, L, C) text -> (B, Q+L, C) embeds, (B, Q+L) mask, (B, Q+L) labels or None.

    Image positions are always attended (mask 1) and never scored (label -100).
    """
    if image_embeds.shape[0] != text_embeds.shape[0] or image_embeds.shape[-1] != text_embeds.shape[-1]:
        raise ValueError(
            f"image embeds {tuple(image_embeds.shape)} and text embeds {tuple(text_embeds.shape)} must share "
            "batch size and width: project the image features to the LLM width first"
        )
    batch, prefix = image_embeds.shape[:2]
    embeds = torch.cat([image_embeds.to(text_embeds.dtype), text_embeds], dim=1)
    image_mask = torch.ones(batch, prefix, dtype=attention_mask.dtype, device=attention_mask.device)
    mask = torch.cat([image_mask, attention_mask], dim=1)
    if labels is not None:
        ignored = torch.full((batch, prefix), IGNORE_INDEX, dtype=labels.dtype, device=labels.device)
        labels = torch.cat([ignored, labels], dim=1)
    return embeds, mask, labels


# ---- 2. MiniGPT4Qwen: placeholder tokens replaced in place ----------------------------------------------
def expand_placeholders(prompt: str, tag: str, token: str, tokens_per_image: int) -> str:
    """'图像<Img><ImageHere></Img>' -> the same with <ImageHere> written as token x tokens_per_image."""
    return prompt.replace(tag, token * tokens_per_image)


def replace_placeholders(
    input_ids: torch.Tensor, text_embeds: torch.Tensor, image_embeds: torch.Tensor, placeholder_id: int
) -> torch.Tensor:
    """Write image rows into the positions of placeholder tokens, in reading order.

    input_ids (B, L); text_embeds (B, L, C); image_embeds (images, N, C) or (images*N, C). The k-th
    placeholder of the batch (row by row, left to right) receives the k-th image row. Returns a new tensor.
    """
    channels = text_embeds.shape[-1]
    rows, cols = torch.where(input_ids == placeholder_id)
    image_rows = image_embeds.reshape(-1, channels)
    if rows.numel() != image_rows.shape[0]:
        per_image = image_embeds.shape[1] if image_embeds.dim() == 3 else "N"
        raise ValueError(
            f"the prompt has {rows.numel()} placeholder tokens (id {placeholder_id}) but the images give "
            f"{image_rows.shape[0]} rows ({per_image} per image): repeat the placeholder once per image token"
        )
    merged = text_embeds.clone()
    merged[rows, cols] = image_rows.to(merged.dtype)
    return merged


def layout_labels(input_ids: Sequence[int], placeholder_id: int, tokens_per_image, prefix_images: int = 0) -> List[str]:
    """What each position of one sequence holds: 'image 1', 'image 2', ... or 'text' (for the figures).

    tokens_per_image: one number for all images, or a list with one per image (InternVL2: 256 x tiles).
    prefix_images: images placed before the sequence (BLIP-2's prefix) rather than on placeholders.
    """
    if isinstance(tokens_per_image, int):
        placeholders = sum(int(token) == placeholder_id for token in input_ids)
        sizes = [tokens_per_image] * (prefix_images + -(-placeholders // tokens_per_image))
    else:
        sizes = list(tokens_per_image)
    owners = [f"image {image + 1}" for image, size in enumerate(sizes) for _ in range(size)]
    prefix = sum(sizes[:prefix_images])
    labels, slots = owners[:prefix], iter(owners[prefix:])
    for token in input_ids:
        labels.append(next(slots, "image ?") if int(token) == placeholder_id else "text")
    return labels


# ---- 3. InternVL2: <img><IMG_CONTEXT> x 256*tiles</img> ------------------------------------------------
def internvl_image_tokens(num_patches: int, num_image_token: int = 256) -> str:
    """The string that stands for one image of num_patches tiles in an InternVL2 prompt."""
    return image_tokens(num_patches, num_image_token)


def internvl_prompt(question: str, num_patches_list: Sequence[int], system: str, num_image_token: int = 256) -> str:
    """The single-turn internlm2-chat prompt InternVL2's chat() builds, with every <image> expanded.

    Like chat(), a question with images but no '<image>' gets '<image>\\n' in front.
    """
    if num_patches_list and IMAGE_TAG not in question:
        question = with_image_tag(question)
    if question.count(IMAGE_TAG) != len(num_patches_list):
        raise ValueError(f"{question.count(IMAGE_TAG)} {IMAGE_TAG} tags for {len(num_patches_list)} images")
    return expand_image_tags(INTERNLM2_CHAT.format(system=system, question=question), num_patches_list, num_image_token)


def merge_internvl(
    input_ids: torch.Tensor, text_embeds: torch.Tensor, vit_embeds: torch.Tensor, context_id: int
) -> torch.Tensor:
    """InternVL2's merge is the placeholder replacement with <IMG_CONTEXT> as the placeholder."""
    return replace_placeholders(input_ids, text_embeds, vit_embeds, context_id)


# ---- projectors ------------------------------------------------------------------------------------------
def minigpt4_projector(qformer_hidden: int = 768, llm_hidden: int = 4096) -> nn.Module:
    """MiniGPT-4's only trained layer: Linear over each of the 32 Q-Former output tokens."""
    return nn.Linear(qformer_hidden, llm_hidden)


def llava_projector(vision_hidden: int = 1024, llm_hidden: int = 4096) -> nn.Module:
    """LLaVA: one Linear from CLIP ViT-L/14 patch features to the LLM width."""
    return nn.Linear(vision_hidden, llm_hidden)


def llava15_projector(vision_hidden: int = 1024, llm_hidden: int = 4096) -> nn.Module:
    """LLaVA-1.5's 'mlp2x_gelu': Linear, GELU, Linear."""
    return nn.Sequential(nn.Linear(vision_hidden, llm_hidden), nn.GELU(), nn.Linear(llm_hidden, llm_hidden))


def internvl_mlp1(vision_hidden: int = 1024, llm_hidden: int = 2048, downsample_ratio: float = 0.5) -> nn.Module:
    """InternVL2's mlp1 (same layer names as the checkpoint: 0 LayerNorm, 1 Linear, 2 GELU, 3 Linear)."""
    folded = vision_hidden * int(1 / downsample_ratio) ** 2
    return nn.Sequential(
        nn.LayerNorm(folded), nn.Linear(folded, llm_hidden), nn.GELU(), nn.Linear(llm_hidden, llm_hidden)
    )


def internvl_connect(patch_features: torch.Tensor, mlp1: nn.Module, downsample_ratio: float = 0.5) -> torch.Tensor:
    """(tiles, side*side, vision) ViT patch features (no CLS) -> (tiles, side*side*s^2, llm) image tokens."""
    tiles, patches, channels = patch_features.shape
    side = int(patches**0.5)
    grid = pixel_shuffle(patch_features.reshape(tiles, side, side, channels), downsample_ratio)
    return mlp1(grid.reshape(tiles, -1, grid.shape[-1]))


def blip2_qformer_config(vision_hidden: int = 1408, **overrides):
    """BLIP-2's Q-Former: BERT-base sized, cross-attention to the ViT features every 2nd layer."""
    from transformers import Blip2QFormerConfig

    values = dict(
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        cross_attention_frequency=2,
        encoder_hidden_size=vision_hidden,
    )
    values.update(overrides)
    return Blip2QFormerConfig(**values)


class QFormerConnector(nn.Module):
    """BLIP-2's connector: learned queries read the ViT features through a Q-Former, then Linear to the LLM."""

    def __init__(self, config, llm_hidden: int = 4096, num_query_tokens: int = 32):
        super().__init__()
        from transformers import Blip2QFormerModel

        self.query_tokens = nn.Parameter(torch.zeros(1, num_query_tokens, config.hidden_size))
        nn.init.normal_(self.query_tokens, std=config.initializer_range)
        self.qformer = Blip2QFormerModel(config)
        self.proj = nn.Linear(config.hidden_size, llm_hidden)

    def forward(self, image_features: torch.Tensor) -> torch.Tensor:
        """(B, patches, vision) -> (B, num_query_tokens, llm_hidden): a fixed 32 tokens whatever the image."""
        queries = self.query_tokens.expand(image_features.shape[0], -1, -1)
        out = self.qformer(
            query_embeds=queries,
            encoder_hidden_states=image_features,
            encoder_attention_mask=torch.ones(image_features.shape[:2], dtype=torch.long, device=image_features.device),
        ).last_hidden_state
        return self.proj(out)


# ---- parameter counts at real sizes, without allocating -----------------------------------------------
def count_parameters(module: nn.Module, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def meta_count(build, *args, **kwargs) -> int:
    """Parameters of build(*args, **kwargs) built on the meta device: shapes only, no memory, no init cost."""
    with torch.device("meta"):
        return count_parameters(build(*args, **kwargs))


@dataclass(frozen=True)
class ConnectorSpec:
    vision_hidden: int  # width of what enters the connector
    llm_hidden: int
    sizes: str  # where those widths come from


# Each connector at the sizes of the model that made it known.
MINIGPT4, LLAVA, LLAVA15, INTERNVL2, BLIP2 = (
    later("MiniGPT-4 Linear (Q-Former frozen)"),  # shown in the lesson's language by the plot
    "LLaVA Linear",
    "LLaVA-1.5 MLP",
    "InternVL2-2B mlp1",
    "BLIP-2 Q-Former + Linear",
)
REAL_CONNECTORS = {
    MINIGPT4: ConnectorSpec(768, 4096, "32 Q-Former tokens of 768 -> Vicuna-7B 4096"),
    LLAVA: ConnectorSpec(1024, 4096, "CLIP ViT-L/14 1024 -> Vicuna-7B 4096"),
    LLAVA15: ConnectorSpec(1024, 4096, "CLIP ViT-L/14 1024 -> 4096 -> Vicuna-7B 4096"),
    INTERNVL2: ConnectorSpec(1024, 2048, "InternViT-300M 1024, x4 after pixel shuffle -> InternLM2-1.8B 2048"),
    BLIP2: ConnectorSpec(1408, 4096, "EVA ViT-g 1408 -> 12-layer Q-Former, 32 queries x 768 -> 4096"),
}


def connector_parameter_counts(llm_hidden: Optional[int] = None, vision_hidden: Optional[int] = None) -> Dict[str, int]:
    """Trainable parameters of each connector, keyed like REAL_CONNECTORS.

    With no arguments each connector has its own real sizes. Pass llm_hidden and/or vision_hidden to put
    them all on the same LLM / vision encoder (MiniGPT-4's Linear always reads the Q-Former's 768).
    """

    def sizes(key):
        spec = REAL_CONNECTORS[key]
        vision = spec.vision_hidden if key == MINIGPT4 else vision_hidden or spec.vision_hidden
        return vision, llm_hidden or spec.llm_hidden

    return {
        MINIGPT4: meta_count(minigpt4_projector, *sizes(MINIGPT4)),
        LLAVA: meta_count(llava_projector, *sizes(LLAVA)),
        LLAVA15: meta_count(llava15_projector, *sizes(LLAVA15)),
        INTERNVL2: meta_count(internvl_mlp1, *sizes(INTERNVL2)),
        BLIP2: meta_count(lambda vision, llm: QFormerConnector(blip2_qformer_config(vision), llm), *sizes(BLIP2)),
    }


def plot_connector_parameters(
    counts: Optional[Dict[str, int]] = None, title: str = later("Trainable parameters of the connector")
):
    """Horizontal bars in millions on a log scale: the Q-Former towers over every MLP."""
    from .plots import bar_chart

    counts = counts or connector_parameter_counts()
    return bar_chart(
        {tr(name): count / 1e6 for name, count in counts.items()},
        tr(title),
        unit="M",
        log=True,
        colors=["#C44E52" if name == BLIP2 else "#4C72B0" for name in counts],
        xlabel=tr("millions of trainable parameters (log scale)"),
        number_format="{:,.2f}",
    )


def plot_layouts(
    layouts: Dict[str, Sequence[str]], title: str = later("What each position of the LLM input holds"), every: int = 1
):
    """One coloured strip per connection style: which positions are text and which are which image.

    every: draw one square per that many positions (long InternVL2 prompts); the axis keeps true positions.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter

    layouts = {name: list(strip)[::every] for name, strip in layouts.items()}
    image_colours = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3"]
    kinds = sorted({label for strip in layouts.values() for label in strip if label != "text"})
    palette = {"text": "#D9D9D9"}
    palette.update({kind: image_colours[i % len(image_colours)] for i, kind in enumerate(kinds)})
    width = max(len(strip) for strip in layouts.values())
    fig, ax = plt.subplots(figsize=(min(14, max(7, 2.5 + 0.3 * width)), 0.9 + 0.5 * len(layouts)))
    for row, strip in enumerate(layouts.values()):
        for position, label in enumerate(strip):
            ax.add_patch(plt.Rectangle((position, -row - 0.4), 0.92, 0.8, fc=palette[label], ec="#888888", lw=0.4))
    ax.set_xlim(-0.2, width + 0.2)
    ax.set_ylim(-len(layouts) + 0.4, 0.6)
    ax.set_yticks([-row for row in range(len(layouts))], list(layouts))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{int(x * every)}"))
    ax.set_xlabel(
        tr("position in the sequence the LLM reads (one square per {every})", every=every)
        if every > 1
        else tr("position in the sequence the LLM reads")
    )
    ax.spines[["top", "right", "left"]].set_visible(False)
    ax.legend(
        handles=[Patch(fc=colour, ec="#888888", label=_kind_word(kind)) for kind, colour in palette.items()],
        loc="center left",
        bbox_to_anchor=(1.01, 0.5),
        frameon=False,
    )
    ax.set_title(tr(title))
    fig.tight_layout()
    return fig


def _kind_word(kind: str) -> str:
    """A layout label ('text', 'image 2', 'image ?') as the legend shows it, in the lesson's language."""
    image = re.fullmatch(r"image (\d+|\?)", kind)
    if image:
        return tr("image {n}", n=image.group(1))
    return tr("text") if kind == "text" else kind


# ---- new special tokens vs placeholders (Qwen-VL vs MiniGPT4Qwen) ----------------------------------
def special_token_training_cost(vocab_size: int, llm_hidden: int, tied_embeddings: bool = False) -> int:
    """Parameters that must train when new special tokens (Qwen-VL's <img>, </img>) are added to a frozen
    LLM: their embedding rows start random and the output layer must learn to predict them, and frameworks
    train whole matrices, not rows: the input embedding and (unless tied) lm_head, vocab x width each.
    A placeholder token whose rows are overwritten by image features (MiniGPT4Qwen's <|extra_0|>) costs 0."""
    return vocab_size * llm_hidden * (1 if tied_embeddings else 2)


def placeholder_row_gradients(vocab_size: int = 10, width: int = 4, placeholder_id: int = 3) -> torch.Tensor:
    """The gradient each embedding row gets when the placeholder's positions are replaced by image features:
    (vocab_size,) norms; the placeholder's row gets exactly 0, so it never needs training."""
    torch.manual_seed(0)
    embedding = nn.Embedding(vocab_size, width)
    ids = torch.tensor([[1, placeholder_id, placeholder_id, 5, 7]])
    image = torch.randn(1, 2, width)
    merged = replace_placeholders(ids, embedding(ids), image, placeholder_id)
    (merged**2).sum().backward()
    return embedding.weight.grad.norm(dim=1)
