"""The food set's README (its dataset card), written from the built folder's own counts, and those counts."""

import json
from collections import Counter
from pathlib import Path
from typing import List

from .. import food_artwork
from .phrasing import UNKNOWN_ANSWER
from .spec import KINDS, LANGS, SPEC, SPLITS


def readme(root: Path, dishes: List[dict], source_hash: str) -> str:
    """The README.md of a built food set in root."""
    summary = dataset_summary(root)
    base = ", ".join(f"{d['zh']} {d['en']}" for d in dishes if d["group"] == "base")
    new = ", ".join(f"{d['zh']} {d['en']}" for d in dishes if d["group"] == "new")
    images = summary["images"]
    training = summary["training"]
    lines = [
        "# The course kit's food VQA set",
        "",
        "Built by `course_lib.kit_food_set.ensure_food_vqa(cache)` from the emoji artwork in the kit's `assets/images`",
        f"(source hash {source_hash}). Rebuild it any time: the same source gives the same files.",
        "",
        f"- base dishes (the tiny model is pre-trained on them): {base}",
        f"- new dishes (only the fine-tune teaches them): {new}",
        "",
        "## Images (square 224x224 RGB JPEG, one 448 tile each for InternVL2)",
        "",
        f"- `images/train/`: {images['train']['base'] + images['train']['new']} (Fluent Emoji 3D style, "
        f"{SPEC['per_dish']['train']} per dish)",
        f"- `images/test/`: {images['test']['base'] + images['test']['new']} (same style, other seeds, "
        f"{SPEC['per_dish']['test']} per dish)",
        f"- `images/ood/`: {images['ood']['base'] + images['ood']['new']} (Noto Emoji style: out-of-style test, "
        f"{SPEC['per_dish']['ood']} per dish)",
        "",
        "## Files",
        "",
        f"- `xtuner/pretrain_base.json`: {training['pretrain_base']['records']} XTuner InternVL records: "
        f"{training['pretrain_base']['base']} about base dishes (train split; four-choice and open questions in "
        f"Chinese and English) and {training['pretrain_base']['unknown']} pictures of new dishes answered "
        f'"{UNKNOWN_ANSWER["en"]}" (no names), and {training["pretrain_base"]["probe"]} for the probes\' skills '
        "(yes/no about base dishes, colour and count of shapes). Set XTuner's image_folder to this folder.",
        f"- `xtuner/finetune_new.json`: {training['finetune_new']['records']} records: "
        f"{training['finetune_new']['new']} about new dishes plus {training['finetune_new']['base']} replayed base "
        "records, so fine-tuning does not erase the base dishes.",
        f"- `eval/test.json`, `eval/ood.json`: {summary['eval']['test']['records']} and "
        f"{summary['eval']['ood']['records']} evaluation records, one per image, question kind and language.",
        f"- `eval/probe.json`: {summary['eval']['probe']['records']} probe records (course_lib.probes): POPE-style "
        "yes/no questions on test pictures and the colour and count of shapes in `images/shapes/`, asked before "
        "and after the fine-tune, which never trains them.",
        "- `dishes.json`: the dishes with Chinese and English names, group and cuisine.",
        "",
        "Four-choice questions take their distractors from the same group: a new dish is never asked about next to",
        "base dishes, so a model cannot answer by ruling out the dishes it knows.",
        "",
        "## Licences",
        "",
        "- Fluent Emoji 3D artwork: Copyright (c) Microsoft Corporation, MIT License (`LICENSE-fluent-emoji-3d.txt`).",
        "- Noto Emoji artwork: Google, Apache License 2.0 (`LICENSE-noto-emoji.txt`).",
        "- The rendered images are derived from that artwork under the same licences; the questions and this",
        "  README were written for the course kit.",
        "",
    ]
    return "\n".join(lines)


# ---- summary ---------------------------------------------------------------------------------------
def dataset_summary(path: Path) -> dict:
    """Counts for notebooks: dishes per group, images per split and group, training and evaluation records."""
    path = Path(path)
    dishes = json.loads((path / "dishes.json").read_text(encoding="utf-8"))
    group_of = {d["id"]: d["group"] for d in dishes}
    summary = {"dishes": dict(Counter(d["group"] for d in dishes)), "images": {}, "training": {}, "eval": {}}
    for split in SPLITS:
        counts = Counter(group_of[p.stem.rsplit("_", 1)[0]] for p in (path / "images" / split).glob("*.jpg"))
        summary["images"][split] = {group: counts.get(group, 0) for group in food_artwork.GROUPS}
    for name in ("pretrain_base", "finetune_new"):
        records = json.loads((path / "xtuner" / f"{name}.json").read_text(encoding="utf-8"))
        food = [r for r in records if r["kind"] in KINDS]
        named = [r for r in food if not r.get("unknown")]
        row = {"records": len(records), "unknown": len(food) - len(named), "probe": len(records) - len(food)}
        row.update({group: sum(r["group"] == group for r in named) for group in food_artwork.GROUPS})
        row.update({kind: sum(r["kind"] == kind for r in records) for kind in KINDS})
        row.update({lang: sum(r["lang"] == lang for r in records) for lang in LANGS})
        summary["training"][name] = row
    probe = json.loads((path / "eval" / "probe.json").read_text(encoding="utf-8"))
    summary["eval"]["probe"] = {"records": len(probe), **Counter(r["kind"] for r in probe)}
    for split in ("test", "ood"):
        records = json.loads((path / "eval" / f"{split}.json").read_text(encoding="utf-8"))
        row = {"records": len(records)}
        for group in food_artwork.GROUPS:
            row[group] = {kind: sum(r["group"] == group and r["kind"] == kind for r in records) for kind in KINDS}
        summary["eval"][split] = row
    return summary
