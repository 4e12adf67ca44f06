"""One place decides how the course runs: tiny or real mode, which device, which model and data.

Precedence, highest first: environment variables (COURSE_MODE, COURSE_DEVICE, COURSE_MODEL_PATH,
COURSE_DATA_PATH, COURSE_CACHE_DIR, COURSE_CONFIG for another YAML file), then configs/course.yaml,
then the defaults written there. resolve() never builds or loads anything; it explains its choice, in the lesson's
language (course_lib.i18n, the one other kit module it imports): everything else is handed the setup it returns.
"""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import List, Mapping, Optional, Tuple

import yaml

from .i18n import tr

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_FILE = REPO_ROOT / "configs" / "course.yaml"
MODES = ("auto", "tiny", "real")


class CourseConfigError(ValueError):
    """The course configuration asks for something this machine cannot do; the message says what to change."""


@dataclass(frozen=True)
class CourseSetup:
    """What this machine runs the course with, decided once by resolve() and handed down; it builds nothing.
    The things built from it (the course model, the food set) are asked for in course_lib.artefacts."""

    mode: str  # "tiny" or "real"
    device: str  # "cpu", "cuda", "cuda:N"
    model_path: Optional[Path]  # None in tiny mode: the course model (course_lib.artefacts.lesson_model)
    data_path: Optional[Path]  # None in tiny mode: the kit's food set (course_lib.artefacts.food_set)
    config_file: Path
    cache: Path  # where everything built is kept (COURSE_CACHE_DIR or cache_dir in the course config)
    reasons: Tuple[str, ...] = ()
    warnings: Tuple[str, ...] = ()

    @property
    def is_tiny(self) -> bool:
        return self.mode == "tiny"


def load_config_file(env: Mapping[str, str] = os.environ) -> tuple:
    path = Path(env.get("COURSE_CONFIG") or DEFAULT_CONFIG_FILE)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise CourseConfigError(f"course config {path} does not exist; set COURSE_CONFIG to an existing YAML file")
    except yaml.YAMLError as error:
        raise CourseConfigError(f"course config {path} is not valid YAML: {error}")
    if not isinstance(data, dict):
        raise CourseConfigError(f"course config {path} must be a mapping of keys (mode, device, real, tiny, ...)")
    return path, data


def _repo_path(value) -> Optional[Path]:
    if value in (None, ""):
        return None
    path = Path(os.path.expanduser(str(value)))
    return path if path.is_absolute() else REPO_ROOT / path


def cache_dir(env: Mapping[str, str] = os.environ) -> Path:
    _, data = load_config_file(env)
    path = _repo_path(env.get("COURSE_CACHE_DIR") or data.get("cache_dir") or ".cache")
    if path.exists() and not path.is_dir():
        raise CourseConfigError(
            f"cache folder {path} (COURSE_CACHE_DIR or cache_dir in the course config) is a file; "
            "point it at a folder (it is created if missing)"
        )
    return path


def checkpoint_problem(path: Path) -> Optional[str]:
    """Why path cannot be loaded as an InternVL2 checkpoint with remote code, or None when it can."""
    import json

    config_file = path / "config.json"
    if not config_file.is_file():
        return f"{path} has no config.json"
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        return f"{config_file} is not valid JSON ({error})"
    if not isinstance(config, dict) or "InternVLChatModel" not in (config.get("architectures") or []):
        found = config.get("architectures") if isinstance(config, dict) else type(config).__name__
        return f"{config_file} describes {found!r}, not an InternVL2 chat model (architectures: InternVLChatModel)"
    missing = sorted(
        {
            ref.split(".")[0] + ".py"
            for ref in (config.get("auto_map") or {}).values()
            if isinstance(ref, str) and not (path / (ref.split(".")[0] + ".py")).is_file()
        }
    )
    if missing:
        return (
            f"{path} lacks its remote-code files {', '.join(missing)} (transformers would try to download them): "
            "copy them from the base checkpoint (course_lib.checkpoints.copy_remote_code)"
        )
    if "." in path.name:
        return (
            f"{path.name!r} has a dot in its name, and transformers cannot import remote code from such a folder: "
            "rename it or point at a symbolic link without dots"
        )
    return None


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def _resolve_device(requested: str, has_cuda: bool) -> str:
    requested = (requested or "auto").strip().lower()
    if requested == "auto":
        return "cuda" if has_cuda else "cpu"
    if requested == "cpu":
        return "cpu"
    if requested == "cuda" or requested.startswith("cuda:"):
        if not has_cuda:
            raise CourseConfigError(
                f"device {requested!r} was asked for (COURSE_DEVICE or configs/course.yaml) but torch sees no "
                "CUDA GPU here; use device: auto or cpu"
            )
        return requested
    raise CourseConfigError(f"device must be auto, cpu, cuda or cuda:N; got {requested!r}")


def _first_checkpoint(candidates) -> Optional[Path]:
    for candidate in candidates:
        if candidate is not None and (candidate / "config.json").is_file():
            return candidate
    return None


def resolve(env: Mapping[str, str] = os.environ, has_cuda: Optional[bool] = None) -> CourseSetup:
    """Decide mode, device, model and data for this machine, and say why."""
    config_file, data = load_config_file(env)
    cache = cache_dir(env)
    has_cuda = cuda_available() if has_cuda is None else has_cuda
    real = data.get("real") or {}
    tiny = data.get("tiny") or {}

    mode = (env.get("COURSE_MODE") or data.get("mode") or "auto").strip().lower()
    if mode not in MODES:
        raise CourseConfigError(f"mode must be one of {MODES}; got {mode!r} (COURSE_MODE or 'mode' in {config_file})")
    mode_source = "COURSE_MODE" if env.get("COURSE_MODE") else f"'mode' in {config_file.name}"
    requested_device = env.get("COURSE_DEVICE") or data.get("device") or "auto"
    device = _resolve_device(requested_device, has_cuda)

    explicit_model = _repo_path(env.get("COURSE_MODEL_PATH") or real.get("model_path"))
    explicit_data = _repo_path(env.get("COURSE_DATA_PATH") or real.get("data_path"))
    if explicit_model is not None and checkpoint_problem(explicit_model):
        raise CourseConfigError(
            f"model path {explicit_model} (COURSE_MODEL_PATH or real.model_path): "
            f"{checkpoint_problem(explicit_model)}; "
            "point it at an InternVL2 checkpoint folder, or unset it to use tiny mode"
        )
    searched_models = [_repo_path(p) for p in real.get("model_search") or []]
    real_model = explicit_model or _first_checkpoint(searched_models)
    real_data = explicit_data or next(
        (p for p in (_repo_path(p) for p in real.get("data_search") or []) if p is not None and p.is_dir()), None
    )

    reasons: List[str] = []
    warnings: List[str] = []
    if mode == "tiny":
        reasons.append(tr("tiny mode was asked for ({source}=tiny)", source=mode_source))
    elif mode == "real":
        if real_model is None:
            raise CourseConfigError(
                "real mode was asked for but no InternVL2 checkpoint was found: set COURSE_MODEL_PATH (or "
                f"real.model_path in {config_file}) to a checkpoint folder; searched "
                + ", ".join(str(p) for p in searched_models)
            )
        reasons.append(tr("real mode was asked for ({source}=real)", source=mode_source))
        if device == "cpu":
            if not has_cuda and requested_device.strip().lower() != "cpu":
                raise CourseConfigError(
                    "real mode needs a CUDA GPU and torch sees none here; use COURSE_MODE=tiny, or set "
                    "COURSE_DEVICE=cpu to run the real checkpoint on the CPU anyway (very slow, no training)"
                )
            warnings.append(tr("real checkpoint on the CPU by request: expect minutes per answer; training is off"))
    else:  # auto
        if real_model is not None and has_cuda:
            mode = "real"
            reasons.append(tr("found an InternVL2 checkpoint at {path} and a CUDA GPU", path=real_model))
        else:
            mode = "tiny"
            if real_model is None:
                reasons.append(
                    tr("no InternVL2 checkpoint is configured or in the shared folders (set COURSE_MODEL_PATH)")
                )
            else:
                reasons.append(tr("found a checkpoint at {path}, but real mode needs a CUDA GPU", path=real_model))
            if not has_cuda:
                reasons.append(tr("torch sees no CUDA GPU"))
    if device.startswith("cuda"):
        reasons.append(tr("torch sees a CUDA GPU; using {device}", device=device))
    elif mode == "tiny":
        reasons.append(tr("the tiny model runs on the CPU"))

    if mode == "real":
        if real_data is None:
            warnings.append(
                tr(
                    "no FoodieQA folder found (COURSE_DATA_PATH or real.data_path): the fine-tuning and evaluation "
                    "lessons will stop and say so"
                )
            )
        return CourseSetup("real", device, real_model, real_data, config_file, cache, tuple(reasons), tuple(warnings))
    tiny_data = _repo_path(tiny.get("data_path"))  # None: the kit's own set (course_lib.artefacts.food_set)
    return CourseSetup("tiny", device, None, tiny_data, config_file, cache, tuple(reasons), tuple(warnings))
