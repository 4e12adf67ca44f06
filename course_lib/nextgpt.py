"""NExT-GPT, any-to-any: a diagram of the pipeline and a tiny, runnable version of its decoding-side alignment.

The pipeline: ImageBind encodes image / audio / video (frozen) -> an input projection (trained) makes them
LLM embeddings -> the LLM (Vicuna-7B, frozen; LoRA in instruction tuning) reads them and answers in text,
adding **modality signal tokens** when it wants to produce something else: [IMG0]..[IMG3], [AUD0]..[AUD7],
[VID0]..[VID23] -> an output projection (a small Transformer, trained) maps the signal tokens' hidden
states to the conditioning a diffusion decoder expects -> Stable Diffusion, AudioLDM or Zeroscope (frozen).

Decoding-side alignment (NExT-GPT's stage 2) needs no images at all: for a caption, the diffusion model's
own frozen text encoder gives the conditioning it was trained on (77 x 768 for Stable Diffusion's CLIP);
the output projection is trained with MSE to reproduce it from the signal-token states of the LLM.
Those caption embeddings are computed once, ahead of training, because the text encoder never changes.

align_output_projection() does exactly that at toy size: the frozen LLM is the kit's tiny InternLM2, the
frozen text encoder is a small seeded Transformer over the same tokenizer's ids (TinyTextEncoder), and
only OutputProjector trains.
"""

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import torch
from torch import nn

from .i18n import tr

# NExT-GPT's config: signal tokens per modality, and the decoder each one drives.
SIGNAL_TOKENS = {"image": 4, "audio": 8, "video": 24}
SIGNAL_PREFIX = {"image": "IMG", "audio": "AUD", "video": "VID"}
DECODERS = {"image": "Stable Diffusion v1.5", "audio": "AudioLDM", "video": "Zeroscope v2"}

DEFAULT_CAPTIONS = [
    "a photo of dumplings",
    "a photo of mooncake",
    "a bowl of ramen noodles",
    "a plate of sushi",
    "a photo of mapo tofu",
    "Peking duck on a table",
    "a photo of hot pot",
    "a bento box",
]


def signal_token_names(modality: str) -> List[str]:
    return [f"[{SIGNAL_PREFIX[modality]}{i}]" for i in range(SIGNAL_TOKENS[modality])]


# ---- the diagram -----------------------------------------------------------------------------------------
FROZEN, TRAINED, DATA = "#C9D7EA", "#F6C28B", "#EDEDED"


def draw_pipeline():
    """Boxes and arrows: encode -> input projection -> LLM -> signal tokens -> output projection -> decoders."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Patch

    fig, ax = plt.subplots(figsize=(13, 5.2))
    ax.set_xlim(0, 13.2)
    ax.set_ylim(-0.1, 5.6)
    ax.axis("off")

    def box(x, y, w, h, text, colour, size=9):
        ax.add_patch(
            FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.04,rounding_size=0.12", fc=colour, ec="#555555", lw=1)
        )
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=size)
        return (x, y, w, h)

    def arrow(a, b, colour="#444444"):
        """Horizontal, at the middle of the heights the two boxes share."""
        y = (max(a[1], b[1]) + min(a[1] + a[3], b[1] + b[3])) / 2
        ax.add_patch(
            FancyArrowPatch((a[0] + a[2], y), (b[0], y), arrowstyle="-|>", mutation_scale=11, lw=1.1, color=colour)
        )

    rows = {"image": 3.95, "audio": 2.35, "video": 0.75}
    words = {"image": tr("image"), "audio": tr("audio"), "video": tr("video")}
    inputs = {m: box(0.1, y, 1.2, 0.8, words[m], DATA) for m, y in rows.items()}
    text_in = box(0.1, 4.9, 1.2, 0.55, tr("text"), DATA)
    encoder = box(1.7, 0.75, 1.6, 4.0, tr("ImageBind\nencoders\n(one per\nmodality)"), FROZEN)
    in_proj = box(3.7, 0.75, 1.3, 4.0, tr("input\nprojection\n(Linear)"), TRAINED)
    llm = box(5.4, 0.75, 1.7, 4.7, tr("LLM\n(Vicuna-7B)\n\nreads text +\nprojected\nfeatures"), FROZEN, 10)
    for m in rows:
        arrow(inputs[m], encoder)
    arrow(encoder, in_proj)
    arrow(in_proj, llm)
    arrow(text_in, llm)

    text_out = box(7.5, 4.9, 1.7, 0.55, tr("text answer"), DATA)
    arrow(llm, text_out)
    for m, y in rows.items():
        names = signal_token_names(m)
        label = tr("{first}..{last}\n({n} signal tokens)", first=names[0], last=names[-1], n=len(names))
        signal = box(7.5, y, 1.7, 0.8, label, DATA, 8)
        out_proj = box(9.5, y, 1.4, 0.8, tr("output projection\n(Transformer)"), TRAINED, 8)
        decoder = box(11.2, y, 1.9, 0.8, f"{DECODERS[m]}\n-> {words[m]}", FROZEN, 8.5)
        arrow(llm, signal)
        arrow(signal, out_proj)
        arrow(out_proj, decoder)

    ax.text(
        0.1,
        0.05,
        tr(
            "Stage 1 trains the input projection (encoding side).  Stage 2 trains the output projections "
            "(decoding side: MSE to each decoder's own caption embeddings).\nStage 3 instruction-tunes the LLM "
            "(LoRA) together with both projections."
        ),
        fontsize=8.5,
        color="#333333",
        va="bottom",
    )
    ax.legend(
        handles=[
            Patch(fc=FROZEN, ec="#555555", label=tr("frozen")),
            Patch(fc=TRAINED, ec="#555555", label=tr("trained")),
            Patch(fc=DATA, ec="#555555", label=tr("data / tokens")),
        ],
        loc="upper right",
        ncol=3,
        frameon=False,
        fontsize=9,
    )
    ax.set_title(tr("NExT-GPT: any-to-any through an LLM"), fontsize=12, loc="left")
    fig.tight_layout()
    return fig


# ---- the alignment demo -----------------------------------------------------------------------------------
class TinyTextEncoder(nn.Module):
    """A stand-in for a diffusion model's frozen text encoder: ids -> (B, max_len, width), padded like CLIP's 77."""

    def __init__(
        self, vocab_size: int, width: int = 32, layers: int = 2, heads: int = 4, max_len: int = 16, pad_id: int = 0
    ):
        super().__init__()
        self.max_len, self.pad_id = max_len, pad_id
        self.tokens = nn.Embedding(vocab_size, width)
        self.positions = nn.Parameter(torch.randn(max_len, width) * 0.5)
        layer = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.0, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)

    def pad(self, id_lists: Sequence[Sequence[int]]) -> torch.Tensor:
        ids = torch.full((len(id_lists), self.max_len), self.pad_id, dtype=torch.long)
        for row, seq in enumerate(id_lists):
            seq = list(seq)[: self.max_len]
            ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        return ids

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.norm(self.encoder(self.tokens(ids) + self.positions[: ids.shape[1]]))


class OutputProjector(nn.Module):
    """NExT-GPT-style output projection: learned queries attend to the signal-token states.

    (B, k, llm_hidden) -> (B, out_len, out_width): one row per position of the decoder's conditioning.
    """

    def __init__(self, llm_hidden: int, out_width: int, out_len: int, width: int = 64, heads: int = 4):
        super().__init__()
        self.inp = nn.Linear(llm_hidden, width)
        self.queries = nn.Parameter(torch.randn(out_len, width) * 0.02)
        layer = nn.TransformerDecoderLayer(width, heads, 4 * width, dropout=0.0, batch_first=True, norm_first=True)
        self.decoder = nn.TransformerDecoder(layer, 1)
        self.out = nn.Linear(width, out_width)

    def forward(self, signal_states: torch.Tensor) -> torch.Tensor:
        memory = self.inp(signal_states)
        queries = self.queries.expand(signal_states.shape[0], -1, -1)
        return self.out(self.decoder(queries, memory))


def signal_token_states(
    language_model, tokenizer, captions: Sequence[str], signal_embeds: torch.Tensor
) -> torch.Tensor:
    """Last-layer hidden states at the signal tokens appended to 'user: draw <caption> / assistant:'.

    signal_embeds (k, hidden) plays the rows NExT-GPT adds to the vocabulary for [IMG0]..[IMGk-1].
    Returns (captions, k, hidden); no gradients (the LLM is frozen).
    """
    embedding = language_model.get_input_embeddings()
    states = []
    with torch.no_grad():
        for caption in captions:
            prompt = f"<|im_start|>user\nDraw: {caption}<|im_end|><|im_start|>assistant\n"
            ids = tokenizer(prompt, return_tensors="pt").input_ids.to(embedding.weight.device)
            embeds = torch.cat([embedding(ids), signal_embeds[None].to(embedding.weight)], dim=1)
            out = language_model(inputs_embeds=embeds, output_hidden_states=True)
            states.append(out.hidden_states[-1][0, -signal_embeds.shape[0] :].float())
    return torch.stack(states)


@dataclass
class AlignmentRun:
    losses: List[float]
    projector: OutputProjector
    text_encoder: TinyTextEncoder
    captions: List[str]
    signal_states: torch.Tensor  # (captions, k, llm_hidden), the projector's input
    targets: torch.Tensor  # (captions, max_len, width), the frozen text encoder's caption embeddings
    retrieval_before: float  # fraction of captions whose projected signal is nearest to their own caption
    retrieval_after: float
    info: Dict[str, float] = field(default_factory=dict)


def nearest_caption_accuracy(predicted: torch.Tensor, targets: torch.Tensor) -> float:
    """How often the projected signal of caption i is closer (MSE) to caption i's embedding than to any other."""
    distances = ((predicted[:, None] - targets[None]) ** 2).flatten(2).mean(-1)
    return (distances.argmin(dim=1) == torch.arange(len(targets))).float().mean().item()


def align_output_projection(
    language_model,
    tokenizer,
    captions: Optional[Sequence[str]] = None,
    num_signal_tokens: int = SIGNAL_TOKENS["image"],
    steps: int = 150,
    lr: float = 3e-3,
    text_width: int = 32,
    text_len: int = 16,
    seed: int = 0,
) -> AlignmentRun:
    """Train only an output projection so that signal-token states reproduce caption embeddings (MSE).

    Deterministic for a given seed; leaves the global random state as it was. A few seconds on a CPU.
    """
    captions = list(captions or DEFAULT_CAPTIONS)
    hidden = language_model.get_input_embeddings().weight.shape[1]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        embed_std = language_model.get_input_embeddings().weight.float().std().item()
        signal_embeds = torch.randn(num_signal_tokens, hidden) * embed_std
        text_encoder = TinyTextEncoder(
            len(tokenizer), text_width, max_len=text_len, pad_id=tokenizer.pad_token_id
        ).eval()
        text_encoder.requires_grad_(False)
        projector = OutputProjector(hidden, text_width, text_len)

        # Frozen parts: computed once, as NExT-GPT precomputes its caption embeddings.
        signal_states = signal_token_states(language_model, tokenizer, captions, signal_embeds)
        with torch.no_grad():
            targets = text_encoder(text_encoder.pad([tokenizer(c).input_ids for c in captions]))

        with torch.no_grad():
            before = nearest_caption_accuracy(projector(signal_states), targets)
        optimizer = torch.optim.AdamW(projector.parameters(), lr=lr, weight_decay=0.0)
        losses = []
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # tensors this small train fastest on one thread (no thread hand-offs)
        try:
            for _ in range(steps):
                loss = nn.functional.mse_loss(projector(signal_states), targets)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
        finally:
            torch.set_num_threads(threads)
        projector.eval()
        with torch.no_grad():
            after = nearest_caption_accuracy(projector(signal_states), targets)
    info = {
        "trainable_parameters": sum(p.numel() for p in projector.parameters()),
        "frozen_text_encoder_parameters": sum(p.numel() for p in text_encoder.parameters()),
    }
    return AlignmentRun(losses, projector, text_encoder, captions, signal_states, targets, before, after, info)


def plot_alignment(run: AlignmentRun):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.plot(range(1, len(run.losses) + 1), run.losses, color="#DD8452")
    ax.set_yscale("log")
    ax.set_xlabel(tr("step"))
    ax.set_ylabel(tr("MSE to caption embeddings"))
    ax.set_title(
        tr("Decoding-side alignment: loss {first:.3g} -> {last:.3g}", first=run.losses[0], last=run.losses[-1])
    )
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig
