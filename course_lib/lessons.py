"""The course's lessons and what each one needs, so the environment check can say where each will run."""
from dataclasses import dataclass
from typing import Tuple

from .config import REPO_ROOT

NOTEBOOK_DIR = REPO_ROOT / "notebooks"


@dataclass(frozen=True)
class Lesson:
    number: str
    notebook: str
    title: str
    needs: Tuple[str, ...] = ()  # any of: "data", "xtuner", "serving", "gpu" (every lesson uses the model)

    @property
    def path(self):
        return NOTEBOOK_DIR / self.notebook


LESSONS = (
    Lesson("00", "00_environment_check.ipynb", "Environment check"),
    Lesson("01", "01_meet_internvl2.ipynb", "Meet InternVL2: load it, look inside, ask about a dish"),
)


def available_lessons():
    return [lesson for lesson in LESSONS if lesson.path.is_file()]
