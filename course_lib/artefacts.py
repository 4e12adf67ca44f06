"""What the lessons ask for, by what it is: the "before" model (InternVL2-2B in real mode, the course model in tiny
mode), the "after" model (the before model fine-tuned on the new dishes), the food set; what of it is built
already (status, read by describe() and the environment check); and the line every lesson opens with (begin).

The built things are declared where they are built, each an Artefact (course_lib.builds: name, spec, source
files, what it needs, how it is made): the tiny checkpoint (course_lib.tiny_internvl2.build), the food set
(course_lib.kit_food_set.build) and the course model (course_lib.finetune.pretrain; a copy ships in
assets/course-model, course_lib.course_model). The after model is a fine-tuning run and its conversion
(course_lib.finetune.plan). Everything here is handed the setup (course_lib.config.resolve) and passes its
cache folder down; nothing below reads the configuration itself.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional

from . import course_model
from .builds import Artefact
from .config import CourseSetup, resolve
from .course_model import lesson_model
from .finetune.plan import converted_dir, ensure_finetuned, finished_runs, plan_finetune, runs_root
from .fonts import use_cjk_font
from .i18n import fix_language, tr
from .kit_food_set import FOOD_SET
from .models import load_internvl
from .tiny_internvl2 import TINY_CHECKPOINT

# Every artefact the kit builds, lowest first (each needs only those before it).
REGISTRY: Dict[str, Artefact] = {
    "tiny checkpoint": TINY_CHECKPOINT,
    "food set": FOOD_SET,
    "course model": course_model.COURSE_MODEL_BUILD,
}


@dataclass(frozen=True)
class Found:
    """One thing a lesson needs: where it is (None: nowhere yet), whether it is ready, and in what words."""

    path: Optional[Path]
    ready: Optional[bool]  # True: there; None: made on first use; False: missing, the user must act
    words: str


def before_model(setup: CourseSetup, log=print) -> Path:
    """The model the lessons serve and fine-tune: the configured checkpoint, or the course model."""
    return lesson_model(setup, log=log)


def load_lesson_model(setup: CourseSetup, dtype=None):
    """(model, tokenizer) of the before model on the setup's device."""
    return load_internvl(before_model(setup), setup.device, dtype)


def after_model(setup: CourseSetup, log=print) -> Path:
    """The before model fine-tuned on the new dishes and converted (lesson 10): the newest finished run for
    today's plan, or a fine-tune run now (minutes on a CPU in tiny mode)."""
    return ensure_finetuned(plan_finetune(setup, log=log), log=log)


def food_set(setup: CourseSetup, log=print) -> Optional[Path]:
    """The dataset folder: the configured one, or in tiny mode the kit's food set (built on first use)."""
    if setup.data_path is None and setup.is_tiny:
        return FOOD_SET.ensure(setup.cache, log=log)
    return setup.data_path


def status(setup: CourseSetup) -> Dict[str, Found]:
    """{"before model", "food set", "after model", and every artefact of REGISTRY}: where each is and whether
    it is built, without building anything."""
    found = {name: _built(artefact, setup.cache) for name, artefact in REGISTRY.items()}
    words = course_model.status(setup.cache)  # the shipped copy, or the one built for today's sources
    if course_model.shipped_is_current():
        found["course model"] = Found(course_model.SHIPPED_DIR, True, words)
    else:
        found["course model"] = Found(found["course model"].path, found["course model"].ready, words)
    found["before model"] = found["course model"] if setup.model_path is None else _configured(setup.model_path)
    if setup.data_path is not None:
        found["food set"] = _configured(setup.data_path)
    elif not setup.is_tiny:
        found["food set"] = Found(None, False, tr("none (set COURSE_DATA_PATH)"))
    found["after model"] = _after(setup.cache)
    return found


def _configured(path: Path) -> Found:
    there = path.exists()
    return Found(path, there, str(path) + ("" if there else "  [missing]"))


def _built(artefact: Artefact, cache: Path) -> Found:
    folder = artefact.folder(cache)
    return Found(folder, True if artefact.is_complete(folder) else None, artefact.status(cache))


def _after(cache: Path) -> Found:
    converted = [converted_dir(run, cache) for run in finished_runs(runs_root(cache))]
    converted = [path for path in converted if (path / "conversion.json").is_file()]
    if converted:
        return Found(converted[-1], True, tr("{path} (the newest converted fine-tune)", path=converted[-1]))
    return Found(None, None, tr("not fine-tuned yet (lesson 10 fine-tunes it; lesson 11 does if it must)"))


def describe(setup: CourseSetup) -> str:
    """Mode, device, model, data, the config file and the reasons, as setup.explain() and the environment check
    print them."""
    found = status(setup)
    lines = [
        tr("Mode:   {mode}", mode=setup.mode),
        tr("Device: {device}", device=setup.device),
        tr("Model:  {model}", model=found["before model"].words),
        tr("Data:   {data}", data=found["food set"].words),
        tr("Config: {path}", path=setup.config_file),
        tr("Why:"),
    ]
    lines += [f"  - {reason}" for reason in setup.reasons]
    lines += [f"  ! {warning}" for warning in setup.warnings]
    return "\n".join(lines)


class LessonSetup(CourseSetup):
    """The setup as begin() hands it to a lesson: a CourseSetup whose details are one call away."""

    def explain(self) -> None:
        """Print mode, device, model, data, the config file and why (describe)."""
        print(describe(self))


def header(setup: CourseSetup, lesson: str = "") -> str:
    """The one line a lesson opens with: mode, device, model, and where the details are."""
    model = tr("the course model (tiny InternVL2)") if setup.model_path is None else setup.model_path.name
    title = tr("Lesson {lesson} · ", lesson=lesson) if lesson else ""
    line = tr(
        "{mode} mode on {device} · model: {model} · details: setup.explain()",
        mode=setup.mode.upper(),
        device=setup.device,
        model=model,
    )
    return title + line


def begin(lesson: str = "") -> LessonSetup:
    """First call of every notebook: resolve the setup and say in one line what the lesson runs on (the setup's
    warnings and a missing CJK font get a line each); setup.explain() says why."""
    fix_language()  # the lesson's language, for the kernel and what it starts
    setup = LessonSetup(**vars(resolve()))
    print(header(setup, lesson))
    for warning in setup.warnings:
        print(f"! {warning}")
    if use_cjk_font() is None:
        print(
            tr(
                "plots: no CJK font installed, so Chinese labels show as boxes (install fonts-noto-cjk; "
                "`make test` does, as root)"
            )
        )
    return setup
