"""What the lessons ask for, by what it is: the lesson model (InternVL2-2B in real mode, the course model in tiny
mode) and the food set, each found or built in the setup's cache folder; what is built already (status, for the
environment check); and the lines every lesson opens with (begin).

Everything here is handed the setup (course_lib.config.resolve) and passes its cache folder down; the builders
below it (course_lib.course_model, course_lib.food_vqa) take the folder as an argument and never read the
configuration themselves.
"""

from pathlib import Path
from typing import Dict, Optional

from .config import CourseSetup, resolve
from .course_model import SHIPPED_DIR, ensure_course_model, shipped_is_current
from .fonts import use_cjk_font
from .food_vqa import ensure_food_vqa, food_vqa_dir
from .food_vqa import is_complete as food_set_built

COURSE_MODEL = "the course model: the tiny InternVL2, pre-trained on the kit's food set"


def lesson_model(setup: CourseSetup, log=print) -> Path:
    """The checkpoint folder the lessons load: the real one, or in tiny mode the course model (shipped in
    assets/course-model; built in the cache only when its sources changed since it was shipped)."""
    return setup.model_path if setup.model_path is not None else ensure_course_model(setup.cache, log=log)


def load_lesson_model(setup: CourseSetup, dtype=None):
    """(model, tokenizer) of lesson_model on the setup's device."""
    from .models import load_internvl

    return load_internvl(lesson_model(setup), setup.device, dtype)


def food_set(setup: CourseSetup, log=print) -> Optional[Path]:
    """The dataset folder: the configured one, or in tiny mode the kit's food set (built on first use)."""
    if setup.data_path is None and setup.is_tiny:
        return ensure_food_vqa(setup.cache, log=log)
    return setup.data_path


def status(setup: CourseSetup) -> Dict[str, str]:
    """{artefact: where it is and whether it is built}, without building anything."""
    if setup.model_path is not None:
        model = str(setup.model_path) + (f" ({COURSE_MODEL})" if setup.is_tiny else "")
    elif shipped_is_current():
        model = f"{SHIPPED_DIR} ({COURSE_MODEL})"
    else:
        model = "the course model, built in the cache for these sources on first use"
    if setup.data_path is not None:
        data = str(setup.data_path) + ("" if setup.data_path.exists() else "  [missing]")
    elif setup.is_tiny:
        path = food_vqa_dir(setup.cache)
        data = f"{path} (the kit's food VQA set, {'built' if food_set_built(path) else 'built on first use'})"
    else:
        data = "none"
    return {"model": model, "data": data}


def describe(setup: CourseSetup) -> str:
    """Mode, device, model, data, the config file and the reasons, as every lesson prints them."""
    found = status(setup)
    lines = [
        f"Mode:   {setup.mode}",
        f"Device: {setup.device}",
        f"Model:  {found['model']}",
        f"Data:   {found['data']}",
        f"Config: {setup.config_file}",
        "Why:",
    ]
    lines += [f"  - {reason}" for reason in setup.reasons]
    lines += [f"  ! {warning}" for warning in setup.warnings]
    return "\n".join(lines)


def begin(lesson: str = "") -> CourseSetup:
    """First call of every notebook: resolve the setup and print what the lesson will run on, and why."""
    setup = resolve()
    title = f"Lesson {lesson}: " if lesson else ""
    print(f"{title}running in {setup.mode.upper()} mode on {setup.device}")
    print(describe(setup))
    if use_cjk_font() is None:
        print(
            "plots: no CJK font installed, so Chinese labels show as boxes (install fonts-noto-cjk; "
            "`make test` does, as root)"
        )
    return setup
