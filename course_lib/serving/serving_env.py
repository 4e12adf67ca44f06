"""Which Python runs LMDeploy: this one if `lmdeploy` imports here, else the serving environment's.

LMDeploy cannot share an environment with XTuner (LMDeploy 0.18 needs transformers>=4.56, XTuner pins 4.48),
so it lives in its own, .venv-serving (`make serving-env`, GPU machines). COURSE_SERVING_PYTHON names another
Python for it; set, it is the only one looked at, and a path that is not a file is an error, not a quiet
"not installed". The api_server, LMDeploy's prompt rendering and the environment check all ask here.
"""

import importlib.util
import os
from pathlib import Path
from typing import Optional

from ..config import REPO_ROOT, CourseConfigError

SERVING_ENV = REPO_ROOT / ".venv-serving"
SERVING_PYTHON_VARIABLE = "COURSE_SERVING_PYTHON"


class ServingPythonError(CourseConfigError):
    """COURSE_SERVING_PYTHON names no file; the message names the variable and the path, and what to change."""


def lmdeploy_importable() -> bool:
    """Does `lmdeploy` import in this Python?"""
    return importlib.util.find_spec("lmdeploy") is not None


def serving_python() -> Optional[Path]:
    """The Python of the serving environment: COURSE_SERVING_PYTHON when set (ServingPythonError if that is not
    a file), else .venv-serving's; None when there is none."""
    explicit = os.environ.get(SERVING_PYTHON_VARIABLE)
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ServingPythonError(
                f"{SERVING_PYTHON_VARIABLE} is set to {explicit}, which is not a file: set it to the serving "
                f"environment's Python (such as {SERVING_ENV / 'bin' / 'python'}, built by `make serving-env`) "
                "or unset it"
            )
        return path
    default = SERVING_ENV / "bin" / "python"
    return default if default.is_file() else None


def serving_python_is_explicit() -> bool:
    """Does COURSE_SERVING_PYTHON choose the serving Python (rather than .venv-serving)? For messages."""
    return bool(os.environ.get(SERVING_PYTHON_VARIABLE))
