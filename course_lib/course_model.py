"""The course model: the tiny InternVL2 that every tiny-mode lesson, the demo and the benchmarks talk to.

It is the tiny checkpoint (course_lib.tiny_internvl2, random weights) after the kit's pre-training recipe
(course_lib.finetune.pretrain): it names the 12 base dishes of the kit's food set, answers a follow-up about
their cuisine, and says "I do not know this dish" about the 6 new ones, which the fine-tuning lesson teaches.

The recipe takes about 16 minutes on 2 CPU cores, so the built weights ship in assets/course-model (about
9 MB): `make course` is ready in minutes. assets/course-model/course_model.json holds the recipe hash the
weights were built from: a hash of the pre-training recipe, of the tiny model's sources and of the food set's
sources. When those sources change, the shipped copy no longer counts (a test fails until it is rebuilt) and
ensure_course_model() builds the model for the current sources in the cache instead, with progress bars.
`make course-model` (rebuild()) runs the whole recipe again, reports whether the result is bit-identical to
the shipped weights, and with --publish copies it into assets/.
"""

import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Dict, Optional

from .config import REPO_ROOT, CourseSetup
from .finetune.pretrain import COURSE_MODEL_BUILD
from .i18n import tr

SHIPPED_DIR = REPO_ROOT / "assets" / "course-model"
INFO_FILE = "course_model.json"
LICENCE_FILES = ("LICENSE", "README.md")  # written by hand, kept when the weights are republished


def recipe_hash() -> str:
    """The hash of everything the course model is built from (no build needed to know it)."""
    return COURSE_MODEL_BUILD.source_hash()


def shipped_hash(path: Path = SHIPPED_DIR) -> Optional[str]:
    try:
        return json.loads((Path(path) / INFO_FILE).read_text(encoding="utf-8"))["recipe_hash"]
    except (OSError, ValueError, KeyError):
        return None


def shipped_is_current(path: Path = SHIPPED_DIR) -> bool:
    return shipped_hash(path) == recipe_hash() and (Path(path) / "model.safetensors").is_file()


def ensure_course_model(cache: Path, log=print, progress: bool = True) -> Path:
    """The course model's folder: the shipped one, or (sources changed since it was built) one built in cache."""
    if shipped_is_current():
        return SHIPPED_DIR
    log(
        f"assets/course-model was built from other sources (recipe {shipped_hash()}, these sources: {recipe_hash()}); "
        "using the course model built for these sources in the cache (about 16 CPU minutes the first time; "
        "`make course-model PUBLISH=1` refreshes the shipped copy)"
    )
    return COURSE_MODEL_BUILD.ensure(cache, log=log, progress=progress)


def status(cache: Path) -> str:
    """Where the course model is, without building it."""
    if shipped_is_current():
        return tr("{path} ({title}, shipped)", path=SHIPPED_DIR, title=tr(COURSE_MODEL_BUILD.title))
    return COURSE_MODEL_BUILD.status(cache) + tr("; assets/course-model is of other sources")


def lesson_model(setup: CourseSetup, log=print) -> Path:
    """The checkpoint folder the lessons load: the real one, or in tiny mode the course model (shipped in
    assets/course-model; built in the cache only when its sources changed since it was shipped)."""
    return setup.model_path if setup.model_path is not None else ensure_course_model(setup.cache, log=log)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weight_differences(a: Path, b: Path) -> Dict[str, float]:
    """Largest absolute difference per tensor between two checkpoints' model.safetensors (0 for equal)."""
    from safetensors.torch import load_file

    left, right = load_file(str(Path(a) / "model.safetensors")), load_file(str(Path(b) / "model.safetensors"))
    if left.keys() != right.keys():
        raise ValueError(f"{a} and {b} hold different tensors: {sorted(set(left) ^ set(right))[:5]}")
    return {key: float((left[key].float() - right[key].float()).abs().max()) for key in sorted(left)}


def publish(built: Path, target: Path = SHIPPED_DIR, log=print) -> Path:
    """Copy a built course model into target (assets/course-model), keeping its LICENSE and README."""
    import torch

    built, target = Path(built), Path(target)
    staging = target.with_name(target.name + ".publishing")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(built, staging)
    for name in LICENCE_FILES:
        if (target / name).is_file():
            shutil.copy2(target / name, staging / name)
    from safetensors.torch import load_file

    parameters = sum(tensor.numel() for tensor in load_file(str(staging / "model.safetensors")).values())
    pretrain = json.loads((staging / "pretrain_info.json").read_text(encoding="utf-8"))
    info = {
        "recipe_hash": built.name.rsplit("-", 1)[1],
        "built_as": built.name,
        "parameters": parameters,
        "recipe_seconds": pretrain.get("seconds"),
        "torch": torch.__version__,
        "model.safetensors sha256": _sha256(staging / "model.safetensors"),
        "published": time.strftime("%Y-%m-%d"),
        "rebuild": "make course-model (PUBLISH=1 to replace this copy)",
    }
    (staging / INFO_FILE).write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    log(f"Published {built.name} to {target}")
    return target


def rebuild(cache: Path, publish_to: Optional[Path] = None, log=print) -> dict:
    """Build the course model in cache (reusing a finished build there) and compare it with the shipped weights."""
    started = time.perf_counter()
    built = COURSE_MODEL_BUILD.ensure(Path(cache), log=log)
    report = {
        "built": str(built),
        "seconds": round(time.perf_counter() - started, 1),
        "recipe_hash": recipe_hash(),
        "shipped_hash": shipped_hash(),
    }
    if (SHIPPED_DIR / "model.safetensors").is_file():
        differences = weight_differences(built, SHIPPED_DIR)
        report["bit_identical"] = _sha256(built / "model.safetensors") == _sha256(SHIPPED_DIR / "model.safetensors")
        report["largest_weight_difference"] = max(differences.values())
    if publish_to is not None:
        publish(built, publish_to, log=log)
    return report
