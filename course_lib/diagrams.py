"""Architecture diagrams drawn from sizes: BLIP-2, LLaVA-1.5 and InternVL2-2B at their published sizes, and the
kit's tiny InternVL2 (read from its config) beside them, so the course model is seen to be the same machine.

Each architecture is a row of blocks (picture -> vision encoder -> connector -> language model), each block with
the tensor that leaves it. Sizes: BLIP-2 (Li et al. 2023, EVA ViT-g/14 at 224 px, Q-Former with 32 queries, OPT-2.7B),
LLaVA-1.5 (Liu et al. 2023, CLIP ViT-L/14 at 336 px, a two-layer MLP, Vicuna-7B), InternVL2-2B (its config.json:
InternViT-300M at 448 px, 24 layers of width 1024; pixel shuffle 0.5; mlp1; InternLM2-chat-1.8B, 24 layers of 2048).
"""

from dataclasses import dataclass
from typing import Dict, List, Tuple

from . import internvl2_2b
from .i18n import later, tr

# InternVL2-2B's config.json, the fields the diagram shows.
INTERNVL2_2B = dict(
    image_size=internvl2_2b.IMAGE_SIZE,
    patch_size=internvl2_2b.PATCH_SIZE,
    vision_layers=internvl2_2b.VISION["layers"],
    vision_hidden=internvl2_2b.VISION["hidden"],
    downsample_ratio=internvl2_2b.DOWNSAMPLE_RATIO,
    llm_layers=internvl2_2b.LLM["layers"],
    llm_hidden=internvl2_2b.LLM["hidden"],
)

KIND_COLOURS = {"input": "#E5E5E5", "vision": "#4C72B0", "connector": "#DD8452", "llm": "#55A868"}


@dataclass(frozen=True)
class Block:
    name: str
    kind: str  # input, vision, connector or llm (the colour)
    output: str  # the tensor that leaves the block, per picture or per tile


def internvl2_sizes(config) -> Dict[str, float]:
    """The diagram's fields from an InternVLChatConfig (or its config.json as a dict)."""
    get = (lambda obj, key: obj[key]) if isinstance(config, dict) else getattr
    vision, llm = get(config, "vision_config"), get(config, "llm_config")
    return dict(
        image_size=get(config, "force_image_size") or get(vision, "image_size"),
        patch_size=get(vision, "patch_size"),
        vision_layers=get(vision, "num_hidden_layers"),
        vision_hidden=get(vision, "hidden_size"),
        downsample_ratio=get(config, "downsample_ratio"),
        llm_layers=get(llm, "num_hidden_layers"),
        llm_hidden=get(llm, "hidden_size"),
    )


def internvl2_blocks(sizes: Dict[str, float]) -> List[Block]:
    side = sizes["image_size"] // sizes["patch_size"]
    patches, width = side * side, sizes["vision_hidden"]
    folded = int(width / sizes["downsample_ratio"] ** 2)
    tokens = int(patches * sizes["downsample_ratio"] ** 2)
    return [
        Block(tr("picture -> tiles"), "input", f"n x 3 x {sizes['image_size']}²"),
        Block(
            tr("{name}\n{layers} layers, {width} wide", name="InternViT", layers=sizes["vision_layers"], width=width),
            "vision",
            f"n x {patches} x {width}",
        ),
        Block(tr("pixel shuffle {ratio}", ratio=sizes["downsample_ratio"]), "connector", f"n x {tokens} x {folded}"),
        Block(f"mlp1\n{folded} -> {sizes['llm_hidden']}", "connector", f"n x {tokens} x {sizes['llm_hidden']}"),
        Block(
            tr(
                "{name}\n{layers} layers, {width} wide",
                name="InternLM2",
                layers=sizes["llm_layers"],
                width=sizes["llm_hidden"],
            ),
            "llm",
            tr("<IMG_CONTEXT> rows, then text"),
        ),
    ]


def blip2_blocks() -> List[Block]:
    return [
        Block(tr("picture"), "input", "3 x 224²"),
        Block(
            tr("{name} (frozen)\n{layers} layers, {width} wide", name="EVA ViT-g/14", layers=39, width=1408),
            "vision",
            "257 x 1408",
        ),
        Block(tr("Q-Former\n{queries} queries, {layers} layers", queries=32, layers=12), "connector", "32 x 768"),
        Block("Linear\n768 -> 2560", "connector", "32 x 2560"),
        Block(
            tr("{name} (frozen)\n{layers} layers, {width} wide", name="OPT-2.7B", layers=32, width=2560),
            "llm",
            tr("{n}-token prefix, then text", n=32),
        ),
    ]


def llava15_blocks() -> List[Block]:
    return [
        Block(tr("picture"), "input", "3 x 336²"),
        Block(
            tr("{name}\n{layers} layers, {width} wide", name="CLIP ViT-L/14-336", layers=24, width=1024),
            "vision",
            "576 x 1024",
        ),
        Block(tr("MLP (2 layers, GELU)\n{sizes}", sizes="1024 -> 4096"), "connector", "576 x 4096"),
        Block(
            tr("{name}\n{layers} layers, {width} wide", name="Vicuna-7B", layers=32, width=4096),
            "llm",
            tr("{n} <image> rows, then text", n=576),
        ),
    ]


TINY_ROW = later("tiny InternVL2 (the course model)")


def architecture_rows(model_config, model_name: str = TINY_ROW) -> Dict[str, List[Block]]:
    """The three published architectures, then the InternVL2 checkpoint whose config is given."""
    return {
        "BLIP-2 (OPT-2.7B)": blip2_blocks(),
        "LLaVA-1.5-7B": llava15_blocks(),
        "InternVL2-2B": internvl2_blocks(INTERNVL2_2B),
        model_name: internvl2_blocks(internvl2_sizes(model_config)),
    }


def plot_architectures(
    model_config,
    model_name: str = TINY_ROW,
    title: str = later("Picture -> vision encoder -> connector -> language model"),
):
    """One row per architecture: coloured blocks (vision, connector, language model), each with its output."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    rows = architecture_rows(model_config, model_name)
    fig, ax = plt.subplots(figsize=(13, 1.9 * len(rows)))
    step, width, height = 2.6, 2.2, 0.9
    for row, (name, blocks) in enumerate(rows.items()):
        y = -row * 2.0
        ax.text(-0.2, y + height / 2, tr(name), ha="right", va="center", fontsize=10)
        for column, block in enumerate(blocks):
            x = column * step
            ax.add_patch(
                FancyBboxPatch(
                    (x, y),
                    width,
                    height,
                    boxstyle="round,pad=0.04",
                    facecolor=KIND_COLOURS[block.kind],
                    edgecolor="#333333",
                    alpha=0.35 if block.kind == "input" else 0.8,
                )
            )
            ax.text(x + width / 2, y + height / 2, block.name, ha="center", va="center", fontsize=8)
            ax.text(x + width / 2, y - 0.22, block.output, ha="center", va="center", fontsize=7.5, color="#333333")
            if column:
                ax.annotate(
                    "",
                    xy=(x - 0.04, y + height / 2),
                    xytext=(x - step + width + 0.04, y + height / 2),
                    arrowprops=dict(arrowstyle="->", color="#333333"),
                )
    ax.set_xlim(-4.2, 5 * step)
    ax.set_ylim(-2.0 * (len(rows) - 1) - 0.6, height + 0.3)
    ax.axis("off")
    ax.set_title(tr(title))
    fig.tight_layout()
    return fig


# ---- what each training stage trains ---------------------------------------------------------------
# Marked with later(): the figures show them in the lesson's language, the data keep the English.
PARTS = (later("vision encoder"), later("connector"), later("language model"))
STATE_COLOURS = {later("frozen"): "#D9D9D9", later("trained"): "#C44E52", "LoRA": "#EEA0A0"}


@dataclass(frozen=True)
class Stage:
    model: str
    stage: str
    data: str
    parts: Tuple[str, str, str]  # the state of (vision encoder, connector, language model)


# From the papers (BLIP-2 section 3, MiniGPT-4 section 3, LLaVA-1.5 section 3) and the lecture (InternVL2).
TRAINING_STAGES = (
    Stage("BLIP-2", later("1 representation"), later("129 M image-text pairs"), ("frozen", "trained", "frozen")),
    Stage(
        "BLIP-2",
        later("2 generation"),
        later("the same pairs, through the LLM"),
        ("frozen", "trained", "frozen"),
    ),
    Stage("MiniGPT-4", later("1 pre-training"), later("about 5 M image-text pairs"), ("frozen", "trained", "frozen")),
    Stage(
        "MiniGPT-4",
        later("2 fine-tuning"),
        later("3,500 curated pairs, ###Human: ... ###Assistant:"),
        ("frozen", "trained", "frozen"),
    ),
    Stage("LLaVA-1.5", later("1 alignment"), later("558 K captioned pictures"), ("frozen", "trained", "frozen")),
    Stage(
        "LLaVA-1.5",
        later("2 instruction tuning"),
        later("665 K visual instructions"),
        ("frozen", "trained", "trained"),
    ),
    Stage(
        "InternVL2",
        later("1 pre-training"),
        later("image-text pairs: MLP only (InternVL 1.5 trained ViT + MLP)"),
        ("frozen", "trained", "frozen"),
    ),
    Stage(
        "InternVL2",
        later("2 instruction tuning"),
        later("visual instructions: every module"),
        ("trained", "trained", "trained"),
    ),
    Stage(
        later("this course"),
        later("fine-tune (XTuner)"),
        later("food VQA: mlp1 and LoRA on the LLM"),
        ("frozen", "trained", "LoRA"),
    ),
)


def plot_training_stages(stages=TRAINING_STAGES, title: str = later("What each training stage changes")):
    """A grid: one row per stage, one column per part, coloured frozen / trained / LoRA, with the data beside."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch, Rectangle

    fig, ax = plt.subplots(figsize=(12, 0.45 * len(stages) + 1.4))
    for row, stage in enumerate(stages):
        y = len(stages) - 1 - row
        name = tr("{model}, stage {stage}", model=tr(stage.model), stage=tr(stage.stage))
        ax.text(-0.1, y + 0.5, name, ha="right", va="center", fontsize=9)
        for column, state in enumerate(stage.parts):
            ax.add_patch(Rectangle((column, y + 0.08), 0.94, 0.84, facecolor=STATE_COLOURS[state], edgecolor="white"))
            ax.text(column + 0.47, y + 0.5, tr(state), ha="center", va="center", fontsize=8)
        ax.text(3.1, y + 0.5, tr(stage.data), ha="left", va="center", fontsize=8.5, color="#333333")
    for column, part in enumerate(PARTS):
        ax.text(column + 0.47, len(stages) + 0.25, tr(part), ha="center", va="bottom", fontsize=9)
    ax.legend(
        handles=[Patch(facecolor=c, label=tr(s)) for s, c in STATE_COLOURS.items()],
        loc="lower right",
        bbox_to_anchor=(1.0, -0.12 - 0.3 / len(stages)),
        ncol=3,
        frameon=False,
        fontsize=8,
    )
    ax.set_xlim(-3.2, 7.5)
    ax.set_ylim(-0.2, len(stages) + 0.9)
    ax.axis("off")
    ax.set_title(tr(title))
    fig.tight_layout()
    return fig


# ---- where InternVL2's vision encoder comes from ------------------------------------------------------
# InternViT-6B (InternVL 1.0, CVPR 2024): 48 layers, width 3200, trained contrastively against an LLM-initialised
# text side (not a text encoder that is thrown away afterwards). InternVL 1.2 found the fourth-from-last
# layer's features the most useful and kept 45 layers, at 448 px instead of 224. InternVL2-2B's encoder is
# InternViT-300M-448px: 24 layers, width 1024, distilled from the 6B one.
INTERNVIT = {
    "InternViT-6B (v1.0)": dict(layers=48, kept=48, width=3200, image_size=224),
    "InternViT-6B (v1.2)": dict(layers=48, kept=45, width=3200, image_size=448),
    "InternViT-300M (InternVL2-2B)": dict(layers=24, kept=24, width=1024, image_size=448),
}


def plot_internvit(patch_size: int = 14, title: str = later("InternViT: layers kept, and patches per picture")):
    """Left: each encoder's layers, the ones InternVL 1.2 dropped in grey. Right: patches per picture at 224 vs
    448 px."""
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 2.8), gridspec_kw={"width_ratios": [3, 1]})
    for row, (name, spec) in enumerate(INTERNVIT.items()):
        y = len(INTERNVIT) - 1 - row
        colours = ["#4C72B0"] * spec["kept"] + ["#D9D9D9"] * (spec["layers"] - spec["kept"])
        left.barh([y] * spec["layers"], [0.9] * spec["layers"], left=range(spec["layers"]), color=colours, height=0.6)
        left.text(
            -1,
            y,
            tr(
                "{name}: {kept} of {layers} layers, {width} wide, {size} px",
                name=name,
                kept=spec["kept"],
                layers=spec["layers"],
                width=spec["width"],
                size=spec["image_size"],
            ),
            ha="right",
            va="center",
            fontsize=8.5,
        )
    left.set_xlim(-40, 49)
    left.set_xticks([0, 12, 24, 36, 48])
    left.set_yticks([])
    left.set_xlabel(tr("layer (grey: cut off, the features of layer 45 are the ones used)"))
    for side in ("top", "right", "left"):
        left.spines[side].set_visible(False)
    sizes = sorted({spec["image_size"] for spec in INTERNVIT.values()})
    patches = [(size // patch_size) ** 2 for size in sizes]
    right.bar([f"{size} px" for size in sizes], patches, color=["#8C8C8C", "#4C72B0"])
    for index, count in enumerate(patches):
        right.text(index, count, f"{count}", ha="center", va="bottom", fontsize=9)
    right.set_ylim(0, max(patches) * 1.18)  # room for the number above the tallest bar
    right.spines[["top", "right"]].set_visible(False)
    right.set_ylabel(tr("patches ({size}x{size} px)", size=patch_size))
    fig.suptitle(tr(title))
    fig.tight_layout()
    return fig
