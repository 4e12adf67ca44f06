"""JupyterLab as `make course` opens it: on the lessons of the course's language (notebooks, or notebooks/zh for the
Chinese edition), with that language's settings (configs/jupyterlab/<language>/overrides.json: the interface
language, and no "official Jupyter news" question or update check, which need the internet a classroom may lack)."""

import os
import sys
from pathlib import Path
from typing import List

from .config import REPO_ROOT
from .i18n import language
from .lessons import edition_dir

SETTINGS_DIR = REPO_ROOT / "configs" / "jupyterlab"


def lab_command(lang: str = "", host: str = "127.0.0.1", port: int = 8888, extra: List[str] = ()) -> List[str]:
    """The jupyter lab command line for a language ('en' or 'zh'; default: the course's language)."""
    lang = lang or language()
    command = [
        str(Path(sys.executable).parent / "jupyter"),
        "lab",
        f"--ip={host}",
        f"--port={port}",
        "--no-browser",
        f"--notebook-dir={edition_dir(lang)}",
        f"--LabApp.app_settings_dir={SETTINGS_DIR / lang}",
        "--MappingKernelManager.default_kernel_name=course-kit",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # classroom machines often log in as root
        command.append("--allow-root")
    return command + list(extra)
