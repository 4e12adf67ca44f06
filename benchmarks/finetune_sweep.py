"""The fine-tune sweep of lesson 11: what the tiny fine-tune's settings trade, new dishes against base dishes and
the general probes. Each setting of course_lib.finetune.sweep.GRID is one XTuner run on the CPU, converted and scored
on the held-out pictures; the table is printed and written to assets/finetune_sweep.json (the copy that ships).

    make sweep                      (or: .venv/bin/python benchmarks/finetune_sweep.py [--out PATH])

About 35 minutes on two idle CPU cores (69 on a busy machine). Safe to stop and run again: a finished setting is
read back from its run and its stored evaluation, an interrupted one resumes from its last checkpoint.
"""

import argparse
import os
import platform
import time
from pathlib import Path

import torch

from course_lib.artefacts import resolve
from course_lib.course_model import recipe_hash
from course_lib.finetune import sweep
from course_lib.finetune.plan import evaluate_checkpoint, plan_finetune


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=sweep.SHIPPED, help="where to write the table")
    args = parser.parse_args()
    os.environ.setdefault("COURSE_MODE", "tiny")
    setup = resolve()
    plan = plan_finetune(setup, log=lambda *_: None)
    before = sweep.before_row(evaluate_checkpoint(plan.base_model, plan, setup.device, progress=False))
    about = {
        "made": time.strftime("%Y-%m-%d"),
        "course_model_recipe": recipe_hash(),
        "food_set": Path(plan.image_folder).name,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}",
    }
    rows = []
    for number, setting in enumerate(sweep.GRID, 1):
        print(f"[{number}/{len(sweep.GRID)}] {setting.name} ({setting.changed()})", flush=True)
        started = time.perf_counter()
        rows.append(sweep.measure(plan, setting, setup.device, progress=False, log=lambda *_: None))
        print(f"    {time.perf_counter() - started:.0f} s", flush=True)
        # Written after every setting: the table so far is there even if the sweep is stopped.
        sweep.save(rows, before, args.out, {**about, "complete": number == len(sweep.GRID)})
    print(sweep.table([before, *rows], "accuracy in % on held-out pictures (kit food set and probes)"))
    print(f"written: {args.out}; for the README:")
    print(sweep.markdown_table(sweep.load(args.out)))


if __name__ == "__main__":
    main()
