"""What a GPU can prove about the kit in a few minutes, offline (run by scripts/gpu_check.sh).

0. The precision the kit chooses for this GPU (course_lib.precision: bfloat16 where it computes in it, else
   float16), with the GPU's compute capability.
1. The course model (assets/course-model) on CUDA through transformers in that precision: a batch of held-out food
   questions, a two-turn conversation and a stream, compared with the same calls on the CPU in float32.
2. When XTuner imports (the course environment):
   a. the committed GPU recipe (profile "real": AMP fp16, activation checkpointing, LoRA r=128) trains the course
      model for a few iterations on a slice of the kit's food set, one GPU started as torchrun would;
   b. the same under DeepSpeed ZeRO-2 (`--deepspeed deepspeed_zero2`, the lecture's command): folder checkpoints,
      interrupted after the first, resumed from that folder, the final folder converted and asked a question;
   c. peak memory of XTuner's forward and backward pass at two batch sizes, against the memory pre-flight's
      estimate of the same (course_lib.finetune.preflight).

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

from course_lib import precision  # noqa: E402
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
    for device, dtype in (("cpu", torch.float32), ("cuda", precision.choose("cuda").dtype)):
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
        f"{precision.choose('cuda').short} CUDA vs fp32 CPU: "
        f"{figures['batch_answers_equal']}/{len(prompts)} batch answers equal, "
        f"two-turn answers equal: {figures['turns_equal']}, stream == single answer: "
        f"{figures['stream_equals_single_answer_on_cuda']}, {figures['speed_up']}x faster",
        flush=True,
    )


def _xtuner_missing(figures: dict, key: str) -> bool:
    try:
        import xtuner  # noqa: F401
    except ImportError as error:
        figures[key] = f"skipped: XTuner does not import here ({error}); run it in the course environment"
        print(figures[key], flush=True)
        return True
    return False


def _food_run(name: str, records: int):
    from course_lib.finetune.plan import linked_food_set
    from course_lib.finetune.runner import new_run

    data = linked_food_set(cache_dir(), log=lambda *_: None)
    subset = json.loads((data / "xtuner" / "finetune_new.json").read_text(encoding="utf-8"))[:records]
    work = Path(tempfile.mkdtemp(prefix=f"{name}-"))
    (work / "train.json").write_text(json.dumps(subset, ensure_ascii=False), encoding="utf-8")
    return new_run(name, "real", MODEL, work / "train.json", data, work / "runs")


def _losses(run) -> dict:
    from course_lib.finetune.runner import loss_history

    losses = [loss for _, loss, _ in loss_history(run)]
    return {"first_loss": losses[0] if losses else None, "last_loss": losses[-1] if losses else None}


def lora(figures: dict, records: int) -> None:
    """2a: the GPU recipe on one GPU without DeepSpeed."""
    if _xtuner_missing(figures, "lora"):
        return
    from course_lib.finetune.runner import train

    run = _food_run("gpu-check", records)
    started = time.perf_counter()
    final = train(run, progress=False)
    figures["lora"] = {
        "profile": "real",
        "records": records,
        "iterations": run.info().get("total_iters"),
        "seconds": round(time.perf_counter() - started, 1),
        "final": final.name,
        **_losses(run),
    }
    print(f"XTuner LoRA (real profile: AMP fp16, activation checkpointing): {figures['lora']}", flush=True)


def deepspeed_lora(figures: dict, records: int) -> None:
    """2b: ZeRO-2 on one GPU: folder checkpoints, an interruption, a resume from the folder, the conversion."""
    if _xtuner_missing(figures, "deepspeed"):
        return
    from course_lib.finetune.convert import convert_checkpoint
    from course_lib.finetune.runner import checkpoint_table, train

    run = _food_run("gpu-check-zero2", records)
    started = time.perf_counter()
    try:
        train(run, progress=False, deepspeed="deepspeed_zero2", stop_after_iters=1)
        interrupted = None
    except KeyboardInterrupt:
        interrupted = run.latest_checkpoint()
    final = train(run, progress=False)  # resumes under the DeepSpeed config recorded in run.json
    converted = convert_checkpoint(run, run.work_dir.parent / "converted", log=lambda *_: None)
    figures["deepspeed"] = {
        "records": records,
        "iterations": run.info().get("total_iters"),
        "seconds": round(time.perf_counter() - started, 1),
        "interrupted_at": interrupted.name if interrupted else None,
        "interrupted_checkpoint_is_a_folder": bool(interrupted and interrupted.is_dir()),
        "resumed_from": run.info().get("resumed_from"),
        "final": final.name,
        "final_is_a_folder": final.is_dir(),
        "checkpoints": [name for _, name, _ in checkpoint_table(run)],
        "converted_answer": json.loads((converted / "conversion.json").read_text(encoding="utf-8"))["check_answer"],
        **_losses(run),
    }
    print(f"XTuner LoRA under DeepSpeed ZeRO-2: {figures['deepspeed']}", flush=True)


def memory(figures: dict, batches=(1, 4), length: int = 2048, tiles: int = 4) -> None:
    """2c: peak memory above the weights of one forward and backward pass of XTuner's InternVL_V1_5 (LoRA r=128,
    frozen ViT and LLM, activation checkpointing as XTuner turns it on, fp16 autocast as AMP does), measured with
    torch's allocator, against the pre-flight's estimate of the same: activations plus the trained gradients."""
    if _xtuner_missing(figures, "memory"):
        return
    from peft import LoraConfig
    from xtuner.model import InternVL_V1_5

    from course_lib.finetune.cpu_hooks import ensure_single_process_group
    from course_lib.finetune.preflight import GIB, RunSettings, estimate, synthetic_batch

    ensure_single_process_group()  # XTuner's forward asks torch.distributed for its rank
    lora = dict(type=LoraConfig, r=128, lora_alpha=256, lora_dropout=0.05, target_modules=None, task_type="CAUSAL_LM")
    model = InternVL_V1_5(str(MODEL), freeze_llm=True, freeze_visual_encoder=True, llm_lora=lora).cuda().train()
    rows = {}
    for batch in batches:
        data = synthetic_batch(model, batch, length, tiles, device="cuda")
        model.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        with torch.autocast("cuda", dtype=torch.float16):
            loss = model(data)["loss"]
        loss.backward()
        torch.cuda.synchronize()
        measured = torch.cuda.max_memory_allocated() - before
        settings = RunSettings(
            batch_size=batch, max_length=length, lora_r=128, max_dynamic_patch=tiles - 1, sequence_tokens=length
        )
        guess = estimate(MODEL, settings)
        estimated = guess.activations + guess.parts["gradients"]
        rows[batch] = {
            "measured_GiB": round(measured / GIB, 4),
            "estimated_GiB": round(estimated / GIB, 4),
            "measured/estimated": round(measured / estimated, 3),
            "peak_phase": guess.phase,
        }
        print(f"memory, batch {batch} x {length} tokens, {tiles} tiles: {rows[batch]}", flush=True)
    figures["memory"] = {"length": length, "tiles": tiles, "batches": rows}


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
    chosen = precision.choose("cuda")
    figures = {
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0),
        "compute_capability": ".".join(map(str, torch.cuda.get_device_capability(0))),
        "bf16_with_emulation": torch.cuda.is_bf16_supported(),
        "precision": chosen.name,
        "precision_reason": chosen.reason,
    }
    print(f"torch {figures['torch']} on {figures['gpu']}: {chosen.name} ({chosen.reason})", flush=True)
    serving(figures, args.pictures)
    if not args.skip_lora:
        memory(figures)
        lora(figures, args.records)
        deepspeed_lora(figures, args.records)
    args.out.write_text(json.dumps(figures, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"figures: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
