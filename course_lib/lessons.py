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
    Lesson("02", "02_architectures_and_connectors.ipynb",
           "Architectures and connectors: prefix, placeholders, <IMG_CONTEXT>, projectors, NExT-GPT"),
    Lesson("03", "03_qformer_attention_masks.ipynb", "BLIP-2's Q-Former: the three stage-1 attention masks"),
    Lesson("04", "04_pixel_shuffle.ipynb", "Pixel shuffle: 1024 patches become 256 tokens"),
    Lesson("05", "05_dynamic_tiling.ipynb", "Dynamic tiling: 448-px tiles, 35 grids, a thumbnail, the token budget"),
)


def available_lessons():
    return [lesson for lesson in LESSONS if lesson.path.is_file()]
