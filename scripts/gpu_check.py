"""What a GPU can prove about the kit in a few minutes, offline (run by scripts/gpu_check.sh).

1. The course model (assets/course-model) on CUDA through transformers in bfloat16: a batch of held-out food
   questions, a two-turn conversation and a stream, compared with the same calls on the CPU in float32.
2. When XTuner imports (the course environment): the committed GPU recipe (profile "real": AMP fp16,
   activation checkpointing, LoRA r=128) trains the course model for a few iterations on a slice of the kit's
   food set, so the GPU-only parts of the real config run.

It prints one line a step and writes the figures as JSON (--out). What it cannot prove: LMDeploy's engines
(TurboMind and PyTorch) and the real InternVL2-2B; those need a classroom machine with the serving
environment and the checkpoint (README, "The device check").
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from course_lib.config import cache_dir  # noqa: E402
from course_lib.serving import GenerationSettings  # noqa: E402
from course_lib.serving.transformers_backend import TransformersEngine  # noqa: E402

MODEL = REPO / "assets" / "course-model"
PICTURES = REPO / "assets" / "images" / "fluent-emoji-3d"
QUESTIONS = ["图中的菜是什么？", "What dish is this?"]


def serving(figures: dict, pictures: int) -> None:
    images = sorted(PICTURES.glob("*.webp"))[:pictures]
    prompts = [(question, image) for image in images for question in QUESTIONS]
    settings = GenerationSettings(max_new_tokens=24)
    answers = {}
    for device, dtype in (("cpu", torch.float32), ("cuda", torch.bfloat16)):
        engine = TransformersEngine.load(MODEL, device, dtype, settings=settings)
        started = time.perf_counter()
        batch = engine.generate(prompts)
        seconds = time.perf_counter() - started
        session = engine.chat(QUESTIONS[0], images[0])
        session = engine.chat("它是哪里的菜？", session=session)
        streamed = "".join(engine.stream(QUESTIONS[0], images[0]))
        answers[device] = {"batch": batch, "turns": [answer for _, answer in session.history], "stream": streamed}
        figures[f"{device}_batch_seconds"] = round(seconds, 3)
        print(
            f"{device}: {len(prompts)} answers in {seconds:.2f} s; two turns {answers[device]['turns']}; "
            f"stream {streamed!r}",
            flush=True,
        )
    cpu, gpu = answers["cpu"], answers["cuda"]
    figures["batch_answers_equal"] = sum(a == b for a, b in zip(cpu["batch"], gpu["batch"]))
    figures["batch_answers"] = len(prompts)
    figures["stream_equals_single_answer_on_cuda"] = gpu["stream"] == gpu["batch"][0]
    figures["turns_equal"] = cpu["turns"] == gpu["turns"]
    figures["speed_up"] = round(figures["cpu_batch_seconds"] / figures["cuda_batch_seconds"], 2)
    print(
        f"bf16 CUDA vs fp32 CPU: {figures['batch_answers_equal']}/{len(prompts)} batch answers equal, "
        f"two-turn answers equal: {figures['turns_equal']}, stream == single answer: "
        f"{figures['stream_equals_single_answer_on_cuda']}, {figures['speed_up']}x faster",
        flush=True,
    )


def lora(figures: dict, records: int) -> None:
    try:
        import xtuner  # noqa: F401
    except ImportError as error:
        figures["lora"] = f"skipped: XTuner does not import here ({error}); run it in the course environment"
        print(figures["lora"], flush=True)
        return
    from course_lib.finetune.plan import linked_food_set
    from course_lib.finetune.runner import loss_history, new_run, train

    data = linked_food_set(cache_dir(), log=lambda *_: None)
    subset = json.loads((data / "xtuner" / "finetune_new.json").read_text(encoding="utf-8"))[:records]
    work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    (work / "train.json").write_text(json.dumps(subset, ensure_ascii=False), encoding="utf-8")
    run = new_run("gpu-check", "real", MODEL, work / "train.json", data, work / "runs")
    started = time.perf_counter()
    final = train(run, progress=False)
    losses = [loss for _, loss, _ in loss_history(run)]
    figures["lora"] = {
        "profile": "real",
        "records": records,
        "iterations": run.info().get("total_iters"),
        "seconds": round(time.perf_counter() - started, 1),
        "final": final.name,
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
    }
    print(f"XTuner LoRA (real profile: AMP fp16, activation checkpointing): {figures['lora']}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("gpu_check.json"))
    parser.add_argument("--pictures", type=int, default=8)
    parser.add_argument("--records", type=int, default=32)
    parser.add_argument("--skip-lora", action="store_true")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("torch sees no CUDA GPU: nothing to check here (the test suite covers the CPU paths)")
        return 2
    figures = {"torch": torch.__version__, "gpu": torch.cuda.get_device_name(0), "bf16": torch.cuda.is_bf16_supported()}
    print(f"torch {figures['torch']} on {figures['gpu']} (bf16: {figures['bf16']})", flush=True)
    serving(figures, args.pictures)
    if not args.skip_lora:
        lora(figures, args.records)
    args.out.write_text(json.dumps(figures, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"figures: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
