"""The environment check behind notebooks/00: what this machine has, what each lesson will run on,
and one sentence per missing piece saying how to fix it."""

import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from . import precision
from .artefacts import describe, status
from .config import REPO_ROOT, CourseConfigError, resolve
from .i18n import later, tr
from .lessons import available_lessons
from .serving.serving_env import (
    SERVING_PYTHON_VARIABLE,
    ServingPythonError,
    lmdeploy_importable,
    serving_python,
    serving_python_is_explicit,
)

MIN_FREE_GB = 10.0
# Measured sizes (GiB) of what the course can put on disk; the notebook compares them with free space.
DISK_NEEDS_GIB = {
    "course environment (.venv)": 6.3,
    "serving environment (.venv-serving; 7.7 apparent, the rest hard links into .venv's files)": 3.0,
    "InternVL2-2B checkpoint (real mode)": 4.4,
    "tiny checkpoint": 0.01,
}


# The checks' names: keys of NEED_CHECKS, shown through tr() in Check.line.
NAMES = (
    later("course environment"),
    later("GPU"),
    later("precision"),
    later("XTuner"),
    later("serving environment"),
    later("model"),
    later("data"),
    later("disk"),
    later("hub downloads"),
)


@dataclass
class Check:
    name: str
    ok: Optional[bool]  # True fine, False missing (with a fix), None information only
    detail: str
    fix: str = ""

    def line(self) -> str:
        mark = {True: "OK  ", False: "MISS", None: "INFO"}[self.ok]
        text = f"[{mark}] {tr(self.name)}: {self.detail}"
        return text + (f"\n       -> {self.fix}" if self.fix else "")


def _version(package: str) -> Optional[str]:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def check_python() -> Check:
    in_kit_env = Path(sys.prefix).resolve() == (REPO_ROOT / ".venv").resolve()
    detail = tr("Python {version} at {prefix}", version=sys.version.split()[0], prefix=sys.prefix)
    if in_kit_env:
        return Check("course environment", True, detail)
    return Check(
        "course environment",
        None,
        detail + tr(" (not the kit's .venv)"),
        tr("if imports fail below, run `make env` and choose the 'Course kit (course env)' kernel"),
    )


def check_gpu() -> Check:
    if importlib.util.find_spec("torch") is None:
        return Check("GPU", False, tr("torch is not installed"), tr("run `make env`"))
    import torch

    if not torch.cuda.is_available():
        none = tr(
            "none seen by torch {version}: tiny mode (real mode and LMDeploy need one)", version=torch.__version__
        )
        return Check("GPU", None, none)
    props = torch.cuda.get_device_properties(0)
    return Check("GPU", True, f"{torch.cuda.device_count()} x {props.name}, {props.total_memory / 2**30:.0f} GiB")


def check_precision(device: str, bf16: Optional[bool] = None, gpu: Optional[str] = None) -> Check:
    """The precision the lessons compute in on `device`, and why (course_lib.precision); bf16 and gpu make the
    GPU's answers explicit (None: ask it)."""
    chosen = precision.choose(device, bf16, gpu)
    return Check("precision", True, f"{chosen.name}: {chosen.reason}")


def check_xtuner() -> Check:
    version = _version("xtuner")
    if version is None:
        return Check("XTuner", False, tr("not installed"), tr("run `make env` (it installs xtuner 0.2.0 into .venv)"))
    cli = Path(sys.prefix) / "bin" / "xtuner"
    first_python = shutil.which("python")
    detail = f"xtuner {version}, transformers {_version('transformers')}, peft {_version('peft')}"
    if not cli.exists():
        return Check("XTuner", False, detail + tr("; the xtuner command is missing"), tr("run `make env`"))
    if first_python is None or Path(first_python).parent.resolve() != cli.parent.resolve():
        return Check(
            "XTuner",
            None,
            detail + tr("; `python` on PATH is {python}, not this environment's", python=first_python),
            tr("the kit puts its environment first on PATH when it runs `xtuner` (the CLI re-launches `python`)"),
        )
    return Check("XTuner", True, detail)


def check_serving() -> Check:
    """LMDeploy in this kernel, else in the serving environment (serving_env.serving_python: the Python
    COURSE_SERVING_PYTHON names, else .venv-serving's), as api_server and the prompt rendering find it."""
    try:
        python = serving_python()
    except ServingPythonError as error:
        return Check(
            "serving environment",
            False,
            str(error),
            tr(
                "`unset {variable}` to use .venv-serving, or set it to a Python that imports lmdeploy",
                variable=SERVING_PYTHON_VARIABLE,
            ),
        )
    if lmdeploy_importable():
        return Check("serving environment", True, tr("lmdeploy {version} in this kernel", version=_version("lmdeploy")))
    if python is None:
        stand_in = tr("not built: the transformers engine stands in for LMDeploy (GPU machines: `make serving-env`)")
        return Check("serving environment", None, stand_in)
    explicit = serving_python_is_explicit()
    probe = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('lmdeploy'))"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if probe.returncode != 0:
        return Check(
            "serving environment",
            False,
            tr(
                "{python} cannot import lmdeploy",
                python=f"{python} ({SERVING_PYTHON_VARIABLE})" if explicit else python,
            ),
            tr("set {variable} to a Python that imports lmdeploy, or unset it", variable=SERVING_PYTHON_VARIABLE)
            if explicit
            else tr("re-run `make serving-env`"),
        )
    where = f"{python} ({SERVING_PYTHON_VARIABLE})" if explicit else str(python.parent.parent)
    return Check(
        "serving environment", True, tr("lmdeploy {version} in {where}", version=probe.stdout.strip(), where=where)
    )


def check_model(setup) -> Check:
    if setup.is_tiny:  # the course model: shipped, or built in the cache when its sources changed (artefacts.status)
        found = status(setup)["before model"]
        if found.ready:
            return Check("model", True, found.words)
        return Check(
            "model",
            None,
            tr("{model}: built on first use (about 16 CPU minutes)", model=found.words),
            tr("`make course-model PUBLISH=1` rebuilds and ships it"),
        )
    config = json.loads((setup.model_path / "config.json").read_text())
    arch = (config.get("architectures") or ["?"])[0]
    if arch != "InternVLChatModel":
        return Check(
            "model",
            False,
            tr("{path} is a {arch}, not an InternVL2 chat model", path=setup.model_path, arch=arch),
            tr("set COURSE_MODEL_PATH to an InternVL2 folder"),
        )
    return Check("model", True, tr("InternVL2 at {path}", path=setup.model_path))


def check_data(setup) -> Check:
    path = setup.data_path
    if path is None and setup.is_tiny:  # the kit's food set, rendered in the cache (artefacts.status)
        found = status(setup)["food set"]
        if found.ready:
            return Check("data", True, found.words)
        return Check("data", None, found.words, tr("it is rendered from assets/ on first use in seconds"))
    if path is None:
        return Check(
            "data", False, tr("no dataset folder configured"), tr("set COURSE_DATA_PATH to the FoodieQA folder")
        )
    if not path.exists():
        return Check(
            "data",
            False,
            tr("{path} does not exist", path=path),
            tr("set COURSE_DATA_PATH to the folder holding sivqa_tidy.json and the images"),
        )
    return Check("data", True, str(path))


def check_disk() -> Check:
    free = shutil.disk_usage(REPO_ROOT).free / 2**30
    detail = tr("{free:.1f} GiB free at {path}", free=free, path=REPO_ROOT)
    if free < MIN_FREE_GB:
        return Check(
            "disk",
            False,
            detail,
            tr("keep at least {gib:.0f} GiB free (checkpoints, runs, the serving env)", gib=MIN_FREE_GB),
        )
    return Check("disk", True, detail)


def disk_budget() -> dict:
    """Free space next to what the course may need, in GiB."""
    return {"free here": shutil.disk_usage(REPO_ROOT).free / 2**30, **DISK_NEEDS_GIB}


def check_offline() -> Check:
    offline = os.environ.get("HF_HUB_OFFLINE") == "1"
    return Check(
        "hub downloads",
        None,
        tr("off (HF_HUB_OFFLINE=1)")
        if offline
        else tr("allowed in this kernel; the kit itself never downloads weights or data"),
    )


def run_checks(setup=None) -> List[Check]:
    checks = [check_python(), check_gpu(), check_xtuner(), check_serving()]
    if setup is not None:
        checks += [check_precision(setup.device), check_model(setup), check_data(setup)]
    return checks + [check_disk(), check_offline()]


# Which check answers for each need a lesson can declare (see lessons.Lesson.needs).
NEED_CHECKS = {"data": "data", "xtuner": "XTuner", "serving": "serving environment", "gpu": "GPU"}


def lesson_plan(setup, checks: List[Check]) -> List[str]:
    have = {check.name: check.ok for check in checks}
    rows = []
    for lesson in available_lessons():
        missing = [need for need in lesson.needs if have.get(NEED_CHECKS[need]) is not True]
        note = tr(" (without: {missing})", missing=", ".join(missing)) if missing else ""
        where = tr("{mode} mode on {device}", mode=setup.mode, device=setup.device)
        rows.append(f"{lesson.number} {tr(lesson.title)}: {where}{note}")
    return rows


def report(short: bool = False) -> str:
    try:
        setup = resolve()
        header = describe(setup)
    except CourseConfigError as error:
        setup, header = None, tr("Course configuration error: {error}", error=error)
    checks = run_checks(setup)
    lines = [header, "", tr("Checks:")] + ["  " + check.line().replace("\n", "\n  ") for check in checks]
    if setup is not None and not short:
        lines += ["", tr("Lessons:")] + ["  " + row for row in lesson_plan(setup, checks)]
    return "\n".join(lines)
