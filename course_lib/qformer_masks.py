"""BLIP-2's Q-Former and the three self-attention masks of its first training stage.

BLIP-2 keeps the image encoder and the LLM frozen and trains only a small bridge between them, the
Q-Former: a BERT-sized transformer whose input is a fixed set of 32 learnable query vectors. The queries
read the image through cross-attention and come out as a short summary the LLM can take in.

The Q-Former is two towers that share one self-attention: the query tower (self-attention, then
cross-attention to the frozen image features, then its own feed-forward) and the text tower
(self-attention, then a separate feed-forward). Queries and text tokens sit in one sequence,
``[q_1 .. q_Q, t_1 .. t_T]``, and the self-attention mask alone decides how much the two towers talk.
Stage 1 trains three losses on the same image-text pairs, each with its own mask:

* ITC, image-text contrastive: the query outputs and the text's first output are compared as two
  separate embeddings (matching pairs close, others far). If either could look at the other, the task
  would leak the answer, so the mask is *unimodal*: queries see queries, text sees text.
* ITM, image-text matching: a yes/no classifier on the query outputs says whether the text describes the
  image. That needs the finest mixing possible, so the mask is *bidirectional*: everything sees everything.
* ITG, image-grounded text generation: the text is predicted token by token from the image. Text token
  ``t`` may see all queries (the image summary) and the text before it, never the tokens it must predict
  (*causal*). Queries never see the text: all the image information the text needs has to pass through them.

Masks here are boolean (Q+T)x(Q+T) tensors, queries first: ``mask[i, j]`` is True when position ``i``
(a row, the one attending) may attend to position ``j`` (a column). The tiny Q-Former is transformers'
``Blip2QFormerModel`` with a small config; it reads ``[queries; text]`` as ``query_embeds`` with
``query_length=Q`` (only the first Q positions get cross-attention and the query feed-forward) and
accepts a 3-D 1/0 mask per batch, which it turns into ``(1 - mask) * -10000`` added to the attention scores.
"""

from typing import Dict, NamedTuple, Optional, Sequence

import torch
from torch import nn

from .i18n import later, tr

TASKS = {
    "ITC": later("image-text contrastive (unimodal)"),
    "ITM": later("image-text matching (bidirectional)"),
    "ITG": later("image-grounded text generation (causal text)"),
}


def _check_sizes(num_queries: int, text_length: int) -> None:
    for name, value in (("num_queries", num_queries), ("text_length", text_length)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer (at least 1), got {value!r}")


def itc_mask(num_queries: int, text_length: int) -> torch.Tensor:
    """Image-text contrastive: two separate encoders in one sequence, so queries see only queries and text only text.

    ITC compares an image embedding (the query outputs) with a text embedding; each must be computed
    without peeking at the other, or matching them would be trivial.
    """
    _check_sizes(num_queries, text_length)
    is_query = torch.arange(num_queries + text_length) < num_queries
    return is_query[:, None] == is_query[None, :]


def itm_mask(num_queries: int, text_length: int) -> torch.Tensor:
    """Image-text matching: every position sees every other one.

    ITM decides "does this text describe this image?" from the query outputs, so the queries must read the
    whole text and the text the whole image summary.
    """
    _check_sizes(num_queries, text_length)
    size = num_queries + text_length
    return torch.ones(size, size, dtype=torch.bool)


def itg_mask(num_queries: int, text_length: int) -> torch.Tensor:
    """Image-grounded text generation: queries see queries; text token t sees every query and text tokens <= t.

    The text is trained to predict its next token, so a token must not see the ones after it; it may see
    all queries, which is the only way image information reaches the text. Queries must not see the text,
    or the text could pass the answer to itself through them.
    """
    mask = itc_mask(num_queries, text_length)
    mask[num_queries:, :num_queries] = True  # text -> queries
    mask[num_queries:, num_queries:] = torch.ones(text_length, text_length, dtype=torch.bool).tril()
    return mask


MASK_BUILDERS = {"ITC": itc_mask, "ITM": itm_mask, "ITG": itg_mask}


def stage1_masks(num_queries: int, text_length: int) -> Dict[str, torch.Tensor]:
    """The three stage-1 masks, keyed "ITC", "ITM", "ITG"."""
    return {task: build(num_queries, text_length) for task, build in MASK_BUILDERS.items()}


def to_qformer_mask(mask: torch.Tensor, batch_size: int = 1, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A boolean (L, L) mask as the (batch, L, L) tensor of 1.0 (attend) / 0.0 (blocked) Blip2QFormerModel takes.

    The model itself turns it into an additive mask: 0 where allowed, -10000 where blocked, so a blocked
    position gets a softmax weight of exactly 0 in float32.
    """
    if mask.dtype != torch.bool or mask.dim() != 2 or mask.shape[0] != mask.shape[1]:
        raise ValueError(f"expected a square boolean (L, L) mask, got {tuple(mask.shape)} {mask.dtype}")
    return mask.to(dtype).unsqueeze(0).expand(batch_size, -1, -1).contiguous()


# ---------------------------------------------------------------- drawing

CAN_ATTEND = "#4C72B0"
BLOCKED = "#E8E8E8"


def plot_masks(num_queries: int, text_length: int, masks: Optional[Dict[str, torch.Tensor]] = None):
    """The three masks side by side: rows attend (query or text position), columns are attended to."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    masks = masks or stage1_masks(num_queries, text_length)
    size = num_queries + text_length
    fig, axes = plt.subplots(1, len(masks), figsize=(4.2 * len(masks), 4.9), layout="constrained")
    for ax, (task, mask) in zip(axes, masks.items()):
        ax.imshow(mask.numpy(), cmap=ListedColormap([BLOCKED, CAN_ATTEND]), vmin=0, vmax=1)
        if size <= 24:  # thin white lines between cells while they are big enough to count
            ax.set_xticks([i - 0.5 for i in range(1, size)], minor=True)
            ax.set_yticks([i - 0.5 for i in range(1, size)], minor=True)
            ax.grid(which="minor", color="white", linewidth=0.6)
            ax.tick_params(which="minor", length=0)
        for edge in (ax.axvline, ax.axhline):  # the query | text border
            edge(num_queries - 0.5, color="#C44E52", linewidth=2)
        centers = [(num_queries - 1) / 2, num_queries + (text_length - 1) / 2]
        labels = [tr("queries\n(Q={n})", n=num_queries), tr("text\n(T={n})", n=text_length)]
        ax.set_xticks(centers, labels)
        ax.set_yticks(centers, labels, rotation=90, va="center")
        ax.set_xlabel(tr("attended-to position (column)"))
        ax.set_ylabel(tr("attending position (row)"))
        description = TASKS.get(task, "")
        ax.set_title(f"{task}\n{tr(description)}", fontsize=10)
    fig.legend(
        handles=[
            Patch(color=CAN_ATTEND, label=tr("can attend")),
            Patch(facecolor=BLOCKED, edgecolor="grey", label=tr("masked")),
        ],
        loc="upper right",
        ncol=2,
        frameon=False,
    )
    fig.suptitle(tr("BLIP-2 stage 1: Q-Former self-attention masks (row attends to column)"), x=0.02, ha="left")
    return fig


# ---------------------------------------------------------------- a tiny Q-Former


class QFormerOutputs(NamedTuple):
    queries: torch.Tensor  # (batch, Q, hidden)
    text: torch.Tensor  # (batch, T, hidden)


class TinyQFormer(nn.Module):
    """Learnable queries, a text embedding (tokens + positions) and a small transformers Blip2QFormerModel.

    Sizes are tiny so that it runs on a CPU in milliseconds; weights are random (seeded), which is all the
    mask lessons need: information flow depends on the mask, not on training.
    """

    def __init__(
        self,
        vocab_size: int,
        num_queries: int = 32,
        hidden_size: int = 32,
        num_layers: int = 2,
        num_heads: int = 4,
        image_dim: int = 24,
        max_text_length: int = 64,
        seed: int = 0,
    ):
        from transformers import Blip2QFormerConfig, Blip2QFormerModel

        super().__init__()
        config = Blip2QFormerConfig(
            vocab_size=vocab_size,
            hidden_size=hidden_size,
            num_hidden_layers=num_layers,
            num_attention_heads=num_heads,
            intermediate_size=4 * hidden_size,
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
            max_position_embeddings=max_text_length,
            initializer_range=0.2,
            cross_attention_frequency=1,  # every layer reads the image, as in BLIP-2's released Q-Former
            encoder_hidden_size=image_dim,
            use_qformer_text_input=True,  # the text tower's own feed-forward
        )
        with torch.random.fork_rng(devices=[]):  # seeded without touching the caller's random state
            torch.manual_seed(seed)
            self.qformer = Blip2QFormerModel(config)
            self.query_tokens = nn.Parameter(torch.randn(1, num_queries, hidden_size))
            self.word_embeddings = nn.Embedding(vocab_size, hidden_size)
            self.position_embeddings = nn.Embedding(max_text_length, hidden_size)
        self.config = config
        self.num_queries = num_queries
        self.image_dim = image_dim
        self.eval()

    def embed_text(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(batch, T) token ids -> (batch, T, hidden) token + position embeddings."""
        if input_ids.shape[1] > self.position_embeddings.num_embeddings:
            raise ValueError(
                f"text of {input_ids.shape[1]} tokens; this Q-Former has positions for "
                f"{self.position_embeddings.num_embeddings} (max_text_length)"
            )
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        return self.word_embeddings(input_ids) + self.position_embeddings(positions)[None]

    def queries(self, batch_size: int = 1) -> torch.Tensor:
        return self.query_tokens.expand(batch_size, -1, -1)

    def forward(self, input_ids: torch.Tensor, image_features: torch.Tensor, task: str) -> QFormerOutputs:
        """Run the queries and a tokenized text over image features with the mask of task ITC, ITM or ITG."""
        if task not in MASK_BUILDERS:
            raise ValueError(f"task must be one of {list(MASK_BUILDERS)}, got {task!r}")
        text = self.embed_text(input_ids)
        mask = MASK_BUILDERS[task](self.num_queries, text.shape[1])
        return run_qformer(self, self.queries(text.shape[0]), text, image_features, mask)


def run_qformer(
    model: TinyQFormer,
    queries: torch.Tensor,
    text_embeds: torch.Tensor,
    image_features: torch.Tensor,
    mask: torch.Tensor,
) -> QFormerOutputs:
    """Self-attention over [queries; text] under mask, cross-attention to image_features for the queries only.

    queries (batch, Q, hidden), text_embeds (batch, T, hidden), image_features (batch, patches, image_dim),
    mask a boolean (Q+T, Q+T) mask. Returns the last layer's outputs split back into queries and text.
    """
    num_queries, text_length = queries.shape[1], text_embeds.shape[1]
    if mask.shape != (num_queries + text_length,) * 2:
        raise ValueError(f"mask is {tuple(mask.shape)} but Q+T = {num_queries}+{text_length}")
    with torch.no_grad():
        hidden = model.qformer(
            query_embeds=torch.cat([queries, text_embeds], dim=1),
            query_length=num_queries,
            attention_mask=to_qformer_mask(mask, queries.shape[0]),
            encoder_hidden_states=image_features,
        ).last_hidden_state
    return QFormerOutputs(hidden[:, :num_queries], hidden[:, num_queries:])


def fake_image_features(num_patches: int = 16, image_dim: int = 24, seed: int = 0, batch_size: int = 1) -> torch.Tensor:
    """Stand-in for the frozen image encoder's output: (batch, patches, image_dim) seeded noise."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch_size, num_patches, image_dim, generator=generator)


# ---------------------------------------------------------------- what moves when an input changes

FLOW_COLUMNS = ("queries <- text", "earlier text <- later text", "text <- image")
# The grid's column labels (each FLOW_COLUMNS entry with " <- " written out), shown in the lesson's language.
FLOW_TICKS = (
    later("queries\nchanges with\ntext"),
    later("earlier text\nchanges with\nlater text"),
    later("text\nchanges with\nimage"),
)


def _largest_change(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item() if a.numel() else 0.0


def information_flow(
    model: TinyQFormer,
    input_ids: torch.Tensor,
    changed_ids: torch.Tensor,
    image_features: torch.Tensor,
    other_image_features: torch.Tensor,
    tasks: Sequence[str] = tuple(MASK_BUILDERS),
) -> Dict[str, Dict[str, float]]:
    """For each mask, the largest output change (max |delta|) that three input changes cause.

    "queries <- text": query outputs when input_ids become changed_ids (same image).
    "earlier text <- later text": text outputs before the first token that differs, same change.
    "text <- image": text outputs of input_ids when the image features change.
    A value of 0.0 means no information flows that way under that mask.
    """
    same_length = min(input_ids.shape[1], changed_ids.shape[1])
    differs = (input_ids[:, :same_length] != changed_ids[:, :same_length]).any(0).nonzero()
    first_change = differs[0].item() if len(differs) else same_length
    if first_change == 0:
        raise ValueError("the two texts differ at their first token: there is no earlier text to watch")
    table = {}
    for task in tasks:
        base = model(input_ids, image_features, task)
        new_text = model(changed_ids, image_features, task)
        new_image = model(input_ids, other_image_features, task)
        table[task] = {
            FLOW_COLUMNS[0]: _largest_change(base.queries, new_text.queries),
            FLOW_COLUMNS[1]: _largest_change(base.text[:, :first_change], new_text.text[:, :first_change]),
            FLOW_COLUMNS[2]: _largest_change(base.text, new_image.text),
        }
    return table


def format_flow_table(table: Dict[str, Dict[str, float]], tolerance: float = 1e-6) -> str:
    """information_flow's result as text: 'moves' or 'fixed' with the largest change."""
    width = max(len(c) for c in FLOW_COLUMNS) + 2
    lines = ["mask " + "".join(c.rjust(width) for c in FLOW_COLUMNS)]
    for task, row in table.items():
        cells = [f"{'moves' if row[c] > tolerance else 'fixed'} {row[c]:.1e}" for c in FLOW_COLUMNS]
        lines.append(f"{task:5s}" + "".join(cell.rjust(width) for cell in cells))
    return "\n".join(lines)


def plot_information_flow(table: Dict[str, Dict[str, float]], tolerance: float = 1e-6):
    """A masks x input-changes grid: blue where the outputs move, grey where they stay exactly put."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    tasks = list(table)
    moved = [[table[t][c] > tolerance for c in FLOW_COLUMNS] for t in tasks]
    fig, ax = plt.subplots(figsize=(7.5, 0.9 + 0.75 * len(tasks)))
    ax.imshow(moved, cmap=ListedColormap([BLOCKED, CAN_ATTEND]), vmin=0, vmax=1, aspect="auto")
    for row, task in enumerate(tasks):
        for col, column in enumerate(FLOW_COLUMNS):
            value = table[task][column]
            text = tr("moves\n{value:.2g}", value=value) if moved[row][col] else tr("no change")
            ax.text(col, row, text, ha="center", va="center", fontsize=9, color="white" if moved[row][col] else "black")
    ax.set_xticks(range(len(FLOW_COLUMNS)), [tr(tick) for tick in FLOW_TICKS], fontsize=9)
    ax.set_yticks(range(len(tasks)), tasks)
    ax.tick_params(length=0)
    ax.set_title(tr("Which outputs move when an input changes (max |change|)"), fontsize=10)
    fig.tight_layout()
    return fig
