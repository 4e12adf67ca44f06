"""The same requests through LMDeploy and through transformers, at batch 1, 8 and 32.

Every request is a food picture and a question, answered greedily with the same max_new_tokens. For each
backend and batch size, the requests are sent in batches of that size (`engine.generate(batch)`); a request's
latency is the time from its batch's submission to its batch's answers. Reported: requests/s, generated
tokens/s (answer tokens, stop token excluded), p50 and p95 latency, and LMDeploy's ratio to transformers.

    .venv/bin/python benchmarks/serving_benchmark.py [--requests 32] [--max-new-tokens 32] [--batches 1 8 32]

The model is the course setup's (tiny on a CPU, real on a GPU). transformers runs in this Python; LMDeploy
runs here if it imports and CUDA is there, else in the serving environment (.venv-serving) if that exists
and a GPU is there, else it is skipped and the script says why.
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from course_lib.artefacts import lesson_model
from course_lib.config import REPO_ROOT, cuda_available, resolve
from course_lib.food_artwork import EMOJI_DIR, dishes
from course_lib.serving import GenerationSettings, lmdeploy_status
from course_lib.serving.serving_env import serving_python

QUESTIONS = ["图中的菜是什么？", "What dish is this?", "这道菜是哪里的？", "Describe the food in one sentence."]


def requests(count: int):
    files = sorted(dishes())
    return [(QUESTIONS[i % len(QUESTIONS)], EMOJI_DIR / files[i % len(files)]) for i in range(count)]


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def run(engine, prompts, batch_sizes, settings):
    engine.generate(prompts[:1], settings)  # warm-up (first call allocations, lazy imports)
    results = {}
    for batch in batch_sizes:
        latencies, tokens = [], 0
        started = time.perf_counter()
        for i in range(0, len(prompts), batch):
            chunk = prompts[i : i + batch]
            sent = time.perf_counter()
            answers = engine.respond(chunk, settings)
            latencies += [time.perf_counter() - sent] * len(chunk)
            tokens += sum(answer.tokens for answer in answers)
        seconds = time.perf_counter() - started
        results[batch] = {
            "requests/s": len(prompts) / seconds,
            "tokens/s": tokens / seconds,
            "tokens": tokens,
            "p50 s": statistics.median(latencies),
            "p95 s": percentile(latencies, 95),
            "seconds": seconds,
        }
    return results


def transformers_side(path, device, prompts, batch_sizes, settings):
    from course_lib.serving.transformers_backend import TransformersEngine

    engine = TransformersEngine.load(path, device=device)
    try:
        return run(engine, prompts, batch_sizes, settings)
    finally:
        del engine
        if device.startswith("cuda"):
            torch.cuda.empty_cache()


def lmdeploy_side(path, prompts, batch_sizes, settings, engine_kind):
    from course_lib.serving.lmdeploy_backend import LMDeployEngine

    with LMDeployEngine(path, engine=engine_kind) as engine:
        return run(engine, prompts, batch_sizes, settings)


def lmdeploy_elsewhere(args, path):
    """Run this script's LMDeploy side in the serving environment and read its JSON."""
    command = [
        str(serving_python()),
        str(Path(__file__).resolve()),
        "--only",
        "lmdeploy",
        "--json",
        "-",
        "--model",
        str(path),
        "--requests",
        str(args.requests),
        "--max-new-tokens",
        str(args.max_new_tokens),
        "--engine",
        args.engine,
        "--batches",
        *map(str, args.batches),
    ]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the serving environment's run failed:\n{done.stderr[-3000:]}")
    return {int(k): v for k, v in json.loads(done.stdout.strip().splitlines()[-1]).items()}


def print_table(name, results):
    print(f"\n{name}")
    print(f"{'batch':>6s}{'requests/s':>12s}{'tokens/s':>10s}{'p50 s':>9s}{'p95 s':>9s}{'tokens':>8s}")
    for batch, r in results.items():
        print(
            f"{batch:>6d}{r['requests/s']:>12.2f}{r['tokens/s']:>10.1f}{r['p50 s']:>9.3f}{r['p95 s']:>9.3f}"
            f"{r['tokens']:>8d}"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 gives stable timings)")
    parser.add_argument("--engine", default=None, choices=["turbomind", "pytorch"], help="LMDeploy engine")
    parser.add_argument("--model", type=Path, help="checkpoint (default: the course setup's)")
    parser.add_argument("--only", choices=["transformers", "lmdeploy"])
    parser.add_argument("--json", help="also write the figures as JSON to this file ('-' = last line of stdout)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    setup = resolve()
    path = args.model or lesson_model(setup, log=lambda *_: None)
    args.engine = args.engine or ("pytorch" if setup.is_tiny else "turbomind")
    prompts = requests(args.requests)
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens)
    figures = {}
    if args.only == "lmdeploy":  # the serving environment's half of a run
        json.dump(
            {str(k): v for k, v in lmdeploy_side(path, prompts, args.batches, settings, args.engine).items()},
            sys.stdout,
        )
        print()
        return

    print(
        f"{len(prompts)} requests (food picture + question), greedy, max_new_tokens={args.max_new_tokens}; "
        f"model {path} ({setup.mode} mode, {setup.device}, {args.threads} CPU thread(s))"
    )
    figures["transformers"] = transformers_side(path, setup.device, prompts, args.batches, settings)
    print_table(f"transformers ({setup.device})", figures["transformers"])

    ok, why = lmdeploy_status()
    if args.only != "transformers":
        if ok:
            figures["lmdeploy"] = lmdeploy_side(path, prompts, args.batches, settings, args.engine)
        elif serving_python() is not None and cuda_available():
            figures["lmdeploy"] = lmdeploy_elsewhere(args, path)
        else:
            print(
                f"\nLMDeploy: not run here. {why}"
                + ("" if serving_python() else "; there is no serving environment (.venv-serving) either")
            )
    if "lmdeploy" in figures:
        print_table(f"LMDeploy ({args.engine})", figures["lmdeploy"])
        print(f"\n{'batch':>6s}{'throughput x':>14s}{'p50 latency x':>15s}   (LMDeploy / transformers)")
        for batch in args.batches:
            ours, theirs = figures["transformers"][batch], figures["lmdeploy"][batch]
            print(
                f"{batch:>6d}{theirs['requests/s'] / ours['requests/s']:>14.2f}{theirs['p50 s'] / ours['p50 s']:>15.2f}"
            )
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
