"""Build an artefact once, safely, and declare what each built thing is made of (Artefact).

The tiny checkpoint, the food set and the course model each declare an Artefact (course_lib.tiny_internvl2.build,
course_lib.kit_food_set.build, course_lib.finetune.pretrain); course_lib.artefacts lists them for the lessons
and the environment check.

The build writes into a staging folder next to the target; only a finished build is made readable by
every user (shared classroom machines) and moved into place in one rename, replacing an incomplete earlier
attempt, and staging folders of killed builds are removed. A lock makes concurrent callers (two notebooks, a notebook
and the tests) wait for one builder.
"""

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Mapping, Optional, Tuple

from .i18n import later, tr

# The titles of the built things, marked for translation here: they are written where each is built, in files whose
# text is part of the build's identity (editing them would rebuild the food set and the course model).
TITLES = (
    later("the kit's food VQA set"),
    later("the tiny InternVL2 checkpoint: InternVL2-2B's structure, seeded random weights"),
    later("the course model: the tiny InternVL2, pre-trained on the kit's food set"),
)


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


@dataclass(frozen=True)
class Artefact:
    """One thing the kit builds into the cache folder: the tiny checkpoint, the food set, the course model.

    It is named after what it is, decided by its spec (settings), its source files (their names and bytes) and
    the artefacts it needs (their hashes), and made by make(staging, target, inputs, log, **options) -> info
    (recorded in the marker), where inputs maps each needed artefact's name to its folder. The folder is
    <cache>/<name>-<hash>; the marker file, written last, holds the hash, so a folder of other sources, or a
    killed build, never counts as built.
    """

    name: str
    title: str
    spec: Mapping
    sources: Tuple[Path, ...]
    make: Callable[..., Optional[dict]]
    needs: Tuple["Artefact", ...] = ()
    marker: str = "build_info.json"

    def source_hash(self) -> str:
        digest = hashlib.sha256(json.dumps(self.spec, sort_keys=True, ensure_ascii=False).encode())
        for path in self.sources:
            digest.update(Path(path).name.encode())
            digest.update(Path(path).read_bytes())
        for need in self.needs:
            digest.update(f"{need.name}-{need.source_hash()}".encode())
        return digest.hexdigest()[:12]

    def folder(self, cache: Path) -> Path:
        return Path(cache) / f"{self.name}-{self.source_hash()}"

    def is_complete(self, folder: Path) -> bool:
        """Is folder a finished build of today's sources?"""
        try:
            info = json.loads((Path(folder) / self.marker).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return info.get("source_hash") == self.source_hash()

    def is_built(self, cache: Path) -> bool:
        return self.is_complete(self.folder(cache))

    def ensure(self, cache: Path, log=print, **options) -> Path:
        """The folder in cache, building what it needs and then itself on first use (build_once: safe to re-run)."""
        inputs = {need.name: need.ensure(cache, log=log) for need in self.needs}
        target = self.folder(cache)
        return build_once(target, self.is_complete, lambda staging: self._build(staging, target, inputs, log, options))

    def _build(self, staging: Path, target: Path, inputs: Dict[str, Path], log, options: dict) -> None:
        info = self.make(staging, target, inputs, log, **options) or {}
        marker = {"artefact": self.name, "source_hash": self.source_hash(), **info}
        (staging / self.marker).write_text(json.dumps(marker, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")

    def status(self, cache: Path) -> str:
        """Where it is and whether it is built, without building anything."""
        folder = self.folder(cache)
        state = tr("built") if self.is_complete(folder) else tr("built on first use")
        return tr("{path} ({title}, {state})", path=folder, title=tr(self.title), state=state)
