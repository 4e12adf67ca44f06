"""What the course model can do, measured on the food set's held-out pictures: the figures the acceptance
tests (tests/test_course_model.py) check, printed, next to the same architecture with random weights.

    .venv/bin/python benchmarks/course_model_benchmark.py [--split test|ood] [--max-new-tokens 32] [--json OUT]

Both models answer the same questions as the lessons ask them (InternVL2's batch_chat and chat), one thread, on the CPU
(or --device cuda). The random checkpoint is the reference: it is what every tiny-mode lesson talked to
before the course model.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from course_lib.config import cache_dir
from course_lib.course_model import SHIPPED_DIR, ensure_course_model
from course_lib.course_model_figures import format_figures, measure
from course_lib.kit_food_set import ensure_food_vqa
from course_lib.tiny_internvl2 import ensure_tiny_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", default="test", choices=["test", "ood"])
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cache = cache_dir()
    data = ensure_food_vqa(cache, log=lambda *_: None)
    models = {
        "random weights (the tiny checkpoint)": ensure_tiny_checkpoint(cache, log=lambda *_: None),
        "course model": ensure_course_model(cache),
    }
    results = {}
    for label, path in models.items():
        started = time.perf_counter()
        figures = measure(
            path,
            data,
            cache,
            split=args.split,
            max_new_tokens=args.max_new_tokens,
            device=args.device,
            progress=sys.stderr.isatty(),
        )  # bars in a terminal, not in a log file
        figures["seconds"] = round(time.perf_counter() - started, 1)
        results[label] = figures
        print(f"\n== {label}: {path} ({figures['seconds']} s, {args.split} split, {args.device}) ==")
        print(format_figures(figures))
        for miss in figures["not_ended"][:3]:
            print(
                f"   no <|im_end|> within {args.max_new_tokens} tokens: {miss['dish']} [{miss['lang']}] "
                f"{miss['question']} -> {miss['answer'][:60]}"
            )
        for example in figures["examples"][:2]:
            for turn in example["turns"]:
                print(f"   {example['dish']} [{example['lang']}] {turn['question']} -> {turn['answer'][:60]}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"\nshipped: {SHIPPED_DIR}")


if __name__ == "__main__":
    main()
