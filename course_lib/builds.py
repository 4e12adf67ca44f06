"""Build an artefact once, safely: the tiny checkpoint, the food set and the pre-trained checkpoint use this.

The build writes into a staging folder next to the target; only a finished build is made readable by
every user (shared classroom machines) and moved into place in one rename, replacing an incomplete earlier
attempt, and staging folders of killed builds are removed. A lock makes concurrent callers (two notebooks, a notebook
and the tests) wait for one builder.
"""

import fcntl
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable


def build_once(target: Path, complete: Callable[[Path], bool], build: Callable[[Path], None]) -> Path:
    """Return target, first running build(staging_folder) if complete(target) is false."""
    target = Path(target)
    if complete(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not complete(target):
            for stale in target.parent.glob(f"{target.name}-building-*"):  # left by a killed build
                shutil.rmtree(stale, ignore_errors=True)
            staging = Path(tempfile.mkdtemp(prefix=target.name + "-building-", dir=target.parent))
            try:
                build(staging)
                for path in [staging, *staging.rglob("*")]:
                    path.chmod(0o755 if path.is_dir() else 0o644)
                if target.exists():
                    shutil.rmtree(target)
                os.replace(staging, target)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
    return target
