"""Which backend serves: LMDeploy where it can run (it imports and a CUDA GPU is there), else transformers.

    name, why = choose_backend("auto")      # ("lmdeploy" | "transformers", the reasons in sentences)
    engine = make_engine(setup)             # that backend's Engine for the course setup; engine.why says why

The backends build on engine.py (Engine, GenerationSettings, Session, ...); this module picks one of them,
so engine.py never imports a backend. Also importable as `course_lib.serving.make_engine`.
"""

from pathlib import Path
from typing import List, Optional, Tuple

from .. import precision
from ..artefacts import lesson_model
from ..config import cuda_available
from .engine import Engine, GenerationSettings
from .lmdeploy_backend import LMDeployEngine
from .serving_env import lmdeploy_importable
from .transformers_backend import TransformersEngine

BACKENDS = ("auto", "transformers", "lmdeploy")


def lmdeploy_status(has_lmdeploy: Optional[bool] = None, has_cuda: Optional[bool] = None) -> Tuple[bool, str]:
    """(can the LMDeploy pipeline run in this Python?, the reason in one sentence)."""
    has_lmdeploy = lmdeploy_importable() if has_lmdeploy is None else has_lmdeploy
    has_cuda = cuda_available() if has_cuda is None else has_cuda
    if not has_lmdeploy:  # it cannot share .venv: LMDeploy 0.18 needs transformers>=4.56, XTuner pins 4.48
        return False, "LMDeploy: not in this Python (it lives in .venv-serving: `make serving-env` on a GPU machine)"
    if not has_cuda:
        return False, "LMDeploy: installed, but torch sees no CUDA GPU (LMDeploy 0.18 runs only on GPUs)"
    return True, "LMDeploy: installed, and torch sees a CUDA GPU"


def choose_backend(
    requested: str = "auto", has_lmdeploy: Optional[bool] = None, has_cuda: Optional[bool] = None
) -> Tuple[str, List[str]]:
    """(backend name, reasons). "auto" picks LMDeploy where it can run, else transformers."""
    requested = (requested or "auto").strip().lower()
    if requested not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {requested!r}")
    ok, reason = lmdeploy_status(has_lmdeploy, has_cuda)
    if requested == "transformers":
        return "transformers", ["the transformers backend was asked for", f"({reason})"]
    if requested == "lmdeploy":
        if not ok:
            raise RuntimeError(f"the LMDeploy backend was asked for. {reason}")
        return "lmdeploy", ["the LMDeploy backend was asked for", reason]
    if ok:
        return "lmdeploy", [reason, "LMDeploy serves faster (continuous batching, paged KV cache)"]
    return "transformers", [reason, "so the transformers engine answers instead (the same prompts)"]


def make_engine(
    setup,
    backend: str = "auto",
    settings: Optional[GenerationSettings] = None,
    max_tiles: Optional[int] = None,
    model_path=None,
    **lmdeploy_options,
) -> Engine:
    """The engine for a course setup (course_lib.begin()): tiny checkpoint on CPU, real one on GPU.

    lmdeploy_options go to LMDeployEngine (engine="turbomind"|"pytorch", session_len, cache_max_entry_count, tp,
    quant_policy, bf16, model_format). `engine.why` says which backend runs and why; on LMDeploy, also which of
    its engines runs (`engine.engine`: LMDeploy may fall back from TurboMind to PyTorch) and in which dtype.
    """
    name, why = choose_backend(backend)
    path = Path(model_path) if model_path is not None else lesson_model(setup)
    if name == "lmdeploy":
        lmdeploy_options.setdefault("engine", "pytorch" if setup.is_tiny else "turbomind")
        why.append(  # what is asked for; LMDeployEngine adds the engine LMDeploy runs (it may fall back)
            f"asks for LMDeploy's {lmdeploy_options['engine']} engine "
            f"({'the tiny checkpoint has unusual sizes' if setup.is_tiny else 'its fastest'})"
        )
        return LMDeployEngine(path, settings=settings, max_tiles=max_tiles, why=why, **lmdeploy_options)
    why.append(f"model on {setup.device}" + (" (tiny checkpoint)" if setup.is_tiny else ""))
    chosen = precision.choose(setup.device)
    why.append(f"dtype {chosen.name}: {chosen.reason}")
    return TransformersEngine.load(
        path, device=setup.device, dtype=chosen.dtype, settings=settings, max_tiles=max_tiles, why=why
    )
