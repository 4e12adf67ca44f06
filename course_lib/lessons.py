"""The course's lessons and what each one needs, so the environment check can say where each will run."""

from dataclasses import dataclass
from pathlib import Path
from typing import Tuple

from .config import REPO_ROOT
from .i18n import ZH_FOLDER, later

NOTEBOOK_DIR = REPO_ROOT / "notebooks"


def edition_dir(lang: str) -> Path:
    """Where an edition's lessons live: notebooks, or notebooks/zh for the Chinese edition (generated)."""
    return ZH_FOLDER if lang == "zh" else NOTEBOOK_DIR


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
    Lesson("00", "00_environment_check.ipynb", later("Environment check")),
    Lesson("01", "01_meet_internvl2.ipynb", later("Meet InternVL2: load it, look inside, ask about a dish")),
    Lesson(
        "02",
        "02_architectures_and_connectors.ipynb",
        later("Architectures and connectors: prefix, placeholders, <IMG_CONTEXT>, projectors, NExT-GPT"),
    ),
    Lesson("03", "03_qformer_attention_masks.ipynb", later("BLIP-2's Q-Former: the three stage-1 attention masks")),
    Lesson("04", "04_pixel_shuffle.ipynb", later("Pixel shuffle: 1024 patches become 256 tokens")),
    Lesson(
        "05", "05_dynamic_tiling.ipynb", later("Dynamic tiling: 448-px tiles, 35 grids, a thumbnail, the token budget")
    ),
    Lesson(
        "06",
        "06_serving_with_lmdeploy.ipynb",
        later("Serving with LMDeploy: one engine API, batch, multi-turn, streaming, the same prompt"),
        ("serving", "gpu"),
    ),
    Lesson(
        "07",
        "07_api_server.ipynb",
        later("LMDeploy's api_server: OpenAI requests with images, KV-cache memory, TP, AWQ"),
        ("serving", "gpu"),
    ),
    Lesson(
        "08",
        "08_gradio_food_demo.ipynb",
        later("The Gradio food demo: chat, examples by cuisine, settings, side by side"),
    ),
    Lesson(
        "09",
        "09_food_vqa_data.ipynb",
        later("Food VQA data: the kit's dishes, FoodieQA and its licence, checking records"),
        ("data",),
    ),
    Lesson(
        "10",
        "10_finetune_with_xtuner.ipynb",
        later("LoRA fine-tuning with XTuner: the config, a run, resuming, converting"),
        ("xtuner", "data"),
    ),
    Lesson(
        "11",
        "11_before_after_evaluation.ipynb",
        later("Before/after evaluation: accuracy with intervals, per dish, examples"),
        ("data",),
    ),
)


def available_lessons():
    return [lesson for lesson in LESSONS if lesson.path.is_file()]
