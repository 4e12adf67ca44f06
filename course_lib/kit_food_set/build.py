"""Build the kit's food set into the cache folder once (course_lib.builds.Artefact): render the pictures, write
the records, the dataset card (README.md) and the licences. Every picture and choice comes from a seeded
generator, so the same sources build the same bytes."""

import json
import shutil
import time
from pathlib import Path
from typing import List

from .. import food_artwork, internvl_format, probes, question_format
from ..builds import Artefact
from .card import readme
from .records import dish_list, image_name, replay, shuffled, split_records
from .rendering import jpeg, render
from .spec import SPEC, SPLITS, rng


def _write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def _render_images(root: Path, dishes: List[dict]) -> int:
    count = 0
    for split in SPLITS:
        style = SPEC["style"][split]
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        for dish in dishes:
            art = food_artwork.dish_rgba(dish["id"], style)
            for k in range(SPEC["per_dish"][split]):
                generator = rng("image", split, dish["id"], k)
                image = render(art, generator, SPEC["image_size"], SPEC["work_size"])
                quality = int(generator.integers(60, 96))
                (root / image_name(split, dish["id"], k)).write_bytes(jpeg(image, quality))
                count += 1
    for split in probes.PER_CELL:
        (root / "images" / "shapes" / split).mkdir(parents=True, exist_ok=True)
        for index, shape in enumerate(probes.shape_pictures(split)):
            picture = probes.shape_picture(
                shape["colour"], shape["count"], rng("shape", split, index), SPEC["image_size"]
            )
            picture.save(root / shape["name"])
            count += 1
    return count


def _build(staging: Path, target: Path, inputs: dict, log) -> dict:
    started = time.perf_counter()
    log(f"Building the food VQA set in {target} (seeded; a few seconds) ...")
    dishes = dish_list()
    _write_json(staging / "dishes.json", dishes)
    n_images = _render_images(staging, dishes)
    training, evaluation = split_records(dishes)
    pretrain = shuffled(training["base"] + training["unknown"] + training["probe"], "pretrain")
    fraction = SPEC["replay_fraction"]
    n_replay = round(len(training["new"]) * fraction / (1 - fraction))
    finetune = shuffled(training["new"] + replay(training["base"], n_replay), "finetune")
    _write_json(staging / "xtuner" / "pretrain_base.json", pretrain)
    _write_json(staging / "xtuner" / "finetune_new.json", finetune)
    for split, records in evaluation.items():
        _write_json(staging / "eval" / f"{split}.json", records)
    for folder in food_artwork.STYLES.values():
        shutil.copyfile(folder / "LICENSE", staging / f"LICENSE-{folder.name}.txt")
    (staging / "README.md").write_text(readme(staging, dishes, FOOD_SET.source_hash()), encoding="utf-8")
    log(
        f"Built {target.name}: {len(dishes)} dishes, {n_images} images, {len(pretrain)} + {len(finetune)} training "
        f"records, {sum(len(r) for r in evaluation.values())} evaluation records, "
        f"{time.perf_counter() - started:.1f} s"
    )
    return {"spec": SPEC}  # build_info.json, written last: its presence marks a complete build


def _art_files() -> List[Path]:
    return sorted(p for folder in food_artwork.STYLES.values() for p in folder.iterdir() if p.is_file())


# This package's modules, the artwork's catalogue, the question layout, the probes and the prompt format.
SOURCE_FILES = sorted(Path(__file__).parent.glob("*.py")) + [
    Path(module.__file__) for module in (food_artwork, question_format, probes, internvl_format)
]
FOOD_SET = Artefact(
    "food_vqa",
    "the kit's food VQA set",
    SPEC,
    tuple(SOURCE_FILES + _art_files()),
    _build,
)


def food_vqa_dir(cache: Path) -> Path:
    """The set's folder in the cache folder `cache` (the setup's, handed down: course_lib.config)."""
    return FOOD_SET.folder(cache)


def is_complete(path: Path) -> bool:
    return FOOD_SET.is_complete(path)


def ensure_food_vqa(cache: Path, log=print) -> Path:
    """Return the food VQA folder in `cache`, building it first (seconds) if this source has not been built yet."""
    return FOOD_SET.ensure(cache, log=log)
