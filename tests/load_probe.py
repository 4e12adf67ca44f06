"""Load checkpoints as the kit does, in whichever Python runs this, and print what came out as JSON.

    python tests/load_probe.py FOLDER [FOLDER ...]

For each folder: the weights that differ from its safetensors files ([] when it loaded faithfully), whether the
loader had to give the language model `generate` (transformers >= 4.50 with InternVL2-style remote code), and
greedy answers: a left-padded batch of food pictures and questions (batch_chat), and a two-turn chat. The loading
rule's test (tests/test_loading_rule.py) runs it in the course, serving and newest-transformers environments and
compares. The pictures are the kit's shipped artwork, so no environment needs the food set built.
"""

import json
import os
import sys
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import torch  # noqa: E402
import transformers  # noqa: E402

from course_lib import models  # noqa: E402
from course_lib.asking import GREEDY, ask, ask_each, image_question  # noqa: E402

ARTWORK = Path(__file__).resolve().parent.parent / "assets" / "images" / "fluent-emoji-3d"
PICTURES = ["1f95f", "1f35c", "1f363", "1f364", "1f96e", "1f371"]  # dumplings, ramen, sushi, fried shrimp, ...
QUESTIONS = [
    "图中的菜是什么？",
    "What dish is this?",
    "它是哪里的菜？",
    "Which cuisine is it?",
    "图中的菜是什么？",
    "What dish?",
]


def probe(folder: Path) -> dict:
    model, tokenizer = models.load_internvl(folder, "cpu", torch.float32)
    generation = dict(GREEDY, max_new_tokens=24)
    pictures = [str(ARTWORK / f"{name}.webp") for name in PICTURES]
    first = ask(model, tokenizer, pictures[0], QUESTIONS[0], generation)
    second = ask(
        model, tokenizer, pictures[0], QUESTIONS[2], generation, history=[(image_question(QUESTIONS[0]), first)]
    )
    return {
        "differing": models.weights_differing_from_files(model, folder),
        # give_generate's class is named after the checkpoint's and derives from it
        "generate_added": type(model.language_model).__mro__[1].__name__ == type(model.language_model).__name__,
        "batch": ask_each(model, tokenizer, pictures, QUESTIONS, generation),
        "two_turns": [first, second],
    }


if __name__ == "__main__":
    torch.set_num_threads(1)
    report = {"transformers": transformers.__version__, "checkpoints": {}}
    for folder in sys.argv[1:]:
        try:
            report["checkpoints"][folder] = probe(Path(folder))
        except Exception as error:  # the test shows what failed, in which environment
            report["checkpoints"][folder] = {"error": f"{type(error).__name__}: {error}"}
    print("PROBE " + json.dumps(report, ensure_ascii=False))
