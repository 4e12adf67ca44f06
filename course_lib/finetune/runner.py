"""Run `xtuner train` from Python: a fresh folder per run, a live progress bar, honest failure detection,
and resume after an interruption.

* A run lives in its own folder (runs/<name>-001, -002, ...): starting a run never touches an earlier one.
* The `xtuner` command re-launches `python .../train.py` and exits 0 even when training crashes, so success
  is judged from what the run leaves behind: the final iter_N.pth named by last_checkpoint, and no traceback.
* Interrupted (Ctrl-C, a closed laptop, a killed kernel)? Call train(run) again: it resumes from the last
  saved checkpoint (mmengine's load_from + resume), with the same config and data, and appends to the same log.
"""

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from course_lib.foodieqa import check_training_allowed
from course_lib.vqa_data import read_json_records, validate_xtuner_records

from .data_check import check_tokens, normalise_images
from .xtuner_config import BATCH_SIZE, PROFILES, render

PROGRESS = re.compile(r"Iter\(train\)\s*\[\s*(\d+)/(\d+)\].*?\blr: ([0-9.e+-]+).*?eta: (\S+).*?\bloss: ([0-9.naninf]+)")
RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


class TrainingFailed(RuntimeError):
    """Training stopped without its final checkpoint; the message quotes the end of the log."""


@dataclass
class TrainRun:
    work_dir: Path

    @property
    def info_file(self) -> Path:
        return self.work_dir / "run.json"

    @property
    def config(self) -> Path:
        # Not directly in work_dir: mmengine dumps its parsed copy to work_dir/<config name>, and that dump of
        # XTuner's lazily parsed config does not parse back (the prompt template turns into a string).
        return self.work_dir / "xtuner" / "config.py"

    @property
    def log_file(self) -> Path:
        return self.work_dir / "train.log"

    def info(self) -> dict:
        return json.loads(self.info_file.read_text())

    def update(self, **values) -> None:
        info = self.info()
        info.update(values)
        self.info_file.write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n")

    def latest_checkpoint(self) -> Optional[Path]:
        """The checkpoint mmengine saved last (its last_checkpoint file), if it still exists."""
        marker = self.work_dir / "last_checkpoint"
        if not marker.is_file():
            return None
        path = Path(marker.read_text().strip())
        return path if path.is_file() else None

    def final_checkpoint(self) -> Optional[Path]:
        total = self.info().get("total_iters")
        if not total:
            return None
        path = self.work_dir / f"iter_{total}.pth"
        return path if path.is_file() else None

    def checkpoints(self) -> List[Tuple[int, Path]]:
        """(iteration, iter_N.pth) of every checkpoint still in the run folder, oldest first."""
        found = []
        for path in self.work_dir.glob("iter_*.pth"):
            number = path.stem[len("iter_") :]
            if number.isdigit():
                found.append((int(number), path))
        return sorted(found)

    @property
    def finished(self) -> bool:
        return self.info().get("status") == "finished" and self.final_checkpoint() is not None


def new_run(
    name: str,
    profile: str,
    model_path: Path,
    train_json: Path,
    image_folder: Path,
    runs_root: Path,
    acknowledge_foodieqa_licence: bool = False,
) -> TrainRun:
    """Create runs_root/<name>-NNN with a copy of the config and the paths it trains on.

    Every run the kit starts is made here, so this is where FoodieQA's licence (evaluation only) is enforced:
    a run on a FoodieQA release's pictures needs acknowledge_foodieqa_licence=True. It is also where the data
    is checked (finetune.data_check): every record's shape and picture, then, under the run's own config,
    that every record leaves tokens to learn from and keeps its image tokens; pictures that XTuner would read
    differently from the rest of the kit are normalised into the run folder (run.json lists them).
    """
    if profile not in PROFILES:
        raise ValueError(
            f"profile {profile!r} is not an XTuner config profile of the kit; use one of {sorted(PROFILES)}"
        )

    if not RUN_NAME.fullmatch(str(name)):
        raise ValueError(
            f"run name {name!r}: use letters, digits, '-' and '_' (it names a folder inside {runs_root}; "
            "no '/', '..' or dots)"
        )
    for required, what in (
        (Path(model_path) / "config.json", "model checkpoint"),
        (Path(train_json), "training data"),
        (Path(image_folder), "image folder"),
    ):
        if not required.exists():
            raise FileNotFoundError(f"{what} {required} does not exist")
    check_training_allowed(image_folder, acknowledge_foodieqa_licence)
    records = validate_xtuner_records(train_json, image_folder)  # every record and picture, before any folder
    check_warmup(profile, train_json)
    runs_root = Path(runs_root)
    runs_root.mkdir(parents=True, exist_ok=True)
    number = 1
    while True:
        work_dir = runs_root / f"{name}-{number:03d}"
        try:
            work_dir.mkdir()  # atomic: two runs started at once get different folders
            break
        except FileExistsError:
            number += 1
    run = TrainRun(work_dir)
    paths = {
        "model_path": str(Path(model_path).resolve()),
        "train_json": str(Path(train_json).resolve()),
        "image_folder": str(Path(image_folder).resolve()),
    }
    try:  # the folder holds nothing but what this call writes: on a refusal it goes again
        trained_on, normalised = normalise_images(records, Path(image_folder), work_dir)
        data = {"trained_on": str(trained_on)} if trained_on else {}
        run.config.parent.mkdir()
        run.config.write_text(
            render(profile, **{**paths, "train_json": data.get("trained_on", paths["train_json"])}), encoding="utf-8"
        )
        checked = check_tokens(run.config)
    except BaseException:
        shutil.rmtree(work_dir, ignore_errors=True)
        raise
    run.info_file.write_text(
        json.dumps(
            {
                "name": name,
                "profile": profile,
                "status": "created",
                "created": time.strftime("%Y-%m-%d %H:%M:%S"),
                **paths,
                **data,
                "normalised_images": normalised,
                "system_message": checked.system_message,
                "foodieqa_licence_acknowledged": bool(acknowledge_foodieqa_licence),
            },
            indent=2,
            ensure_ascii=False,
        )
        + "\n"
    )
    return run


MIN_WARMUP_ITERS = 2


def check_warmup(profile: str, train_json: Path) -> None:
    """Refuse (before anything is made) data too small for the config's warm-up to work.

    The warm-up lasts int(warmup_ratio * iterations) iterations. mmengine refuses 0 ("end should be larger
    than begin"), and its LinearLR never reaches the full learning rate: after k warm-up iterations the
    cosine decay starts from (k - 1) / k of it. With k = 1 that is 0: the run trains nothing at all.
    """
    settings = PROFILES[profile]
    records = len(read_json_records(train_json))  # a list (or .jsonl), else a DataError that says what it is
    iterations = math.ceil(records / BATCH_SIZE) * settings["max_epochs"]
    share = settings["warmup_ratio"] * settings["max_epochs"]
    if int(share * math.ceil(records / BATCH_SIZE)) < MIN_WARMUP_ITERS:
        needed = math.ceil(MIN_WARMUP_ITERS * BATCH_SIZE / share)
        raise ValueError(
            f"{train_json} has {records} records: {iterations} iterations, and a warm-up of {settings['warmup_ratio']} "
            f"of training would be under {MIN_WARMUP_ITERS} iterations, after which XTuner's learning rate would stay "
            f"at half its value or less (at 0 for one iteration). Use at least {needed} records."
        )


def set_resume(config: Path, checkpoint: Optional[Path]) -> None:
    """Point the run's config at the checkpoint to continue from (or at none).

    XTuner's own `--resume` option is not used: with the lazily parsed configs of XTuner 0.2.0 it merges the
    seed into the config and turns the prompt template into a string ("'str' object does not support item
    assignment"). mmengine resumes by itself from `load_from` when `resume = True`.
    """
    text = config.read_text(encoding="utf-8")
    text = re.sub(
        r"^load_from = .*$",
        f'load_from = "{checkpoint}"' if checkpoint else "load_from = None",
        text,
        count=1,
        flags=re.M,
    )
    text = re.sub(r"^resume = .*$", f"resume = {checkpoint is not None}", text, count=1, flags=re.M)
    config.write_text(text, encoding="utf-8")


def needs_cuda(profile: str) -> bool:
    """The GPU recipe trains with AMP, which mmengine's AmpOptimWrapper allows on CUDA only."""
    return PROFILES[profile]["optim_wrapper"] == "AmpOptimWrapper"


def single_gpu_process(run: TrainRun, deepspeed: Optional[str] = None, nproc_per_node: int = 1) -> bool:
    """Whether XTuner would train the GPU recipe in one process that has no process group.

    XTuner's InternVL_V1_5 calls torch.distributed.get_rank() in every forward pass (xtuner/model/internvl.py,
    _llm_forward). With NPROC_PER_NODE=1 `xtuner train` starts plain `python train.py` (launcher "none"), and
    the first iteration fails with "Default process group has not been initialized" (seen on an H200,
    2026-12-04). DeepSpeed sets up its own group, several processes go through torchrun, and the CPU recipe's
    SingleProcessGroupHook makes a gloo one; this one case is started as torchrun would start it.
    """
    return needs_cuda(run.info()["profile"]) and not deepspeed and nproc_per_node == 1


def xtuner_command(run: TrainRun, deepspeed: Optional[str] = None, nproc_per_node: int = 1) -> list:
    xtuner = Path(sys.executable).parent / "xtuner"
    command = [str(xtuner) if xtuner.exists() else "xtuner", "train", str(run.config), "--work-dir", str(run.work_dir)]
    if deepspeed:
        command += ["--deepspeed", deepspeed]
    if single_gpu_process(run, deepspeed, nproc_per_node):
        command += ["--launcher", "pytorch"]  # mmengine then makes an NCCL group of one from the variables below
    return command


def launch_env(run: TrainRun, deepspeed: Optional[str] = None, nproc_per_node: int = 1) -> Dict[str, str]:
    """NPROC_PER_NODE for `xtuner train`, and for a one-GPU run the variables torchrun would set."""
    env = {"NPROC_PER_NODE": str(nproc_per_node)}
    if single_gpu_process(run, deepspeed, nproc_per_node):
        # Port 0: rank 0 hosts the group's store, and the system gives it a free port (no other rank connects).
        env.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT="0")
    return env


def training_env(run: TrainRun, extra: Optional[Dict[str, str]] = None) -> dict:
    env = dict(os.environ)
    # The xtuner command re-launches `python`: it must be this environment's python.
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    # Resuming: mmengine (and XTuner's tools) load checkpoints with torch.load(), which since torch 2.6 defaults
    # to weights_only=True and refuses the mmengine objects in them. These are the run's own files: load fully.
    env["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.update(extra or {})
    return env


def train(
    run: TrainRun,
    progress: bool = True,
    deepspeed: Optional[str] = None,
    nproc_per_node: int = 1,
    on_line: Optional[Callable[[str], None]] = None,
    stop_after_iters: Optional[int] = None,
) -> Path:
    """Train (or resume) the run until its final checkpoint; returns that checkpoint.

    stop_after_iters interrupts the run once that iteration is logged and a checkpoint exists (the lesson
    uses it to show resuming; tests use it to prove that resumed runs end where uninterrupted ones do).
    """
    if run.finished:
        return run.final_checkpoint()
    _check_hardware(run)
    resume_from = run.latest_checkpoint()
    set_resume(run.config, resume_from)
    run.update(status="running", resumed_from=str(resume_from) if resume_from else None)
    env = training_env(run, launch_env(run, deepspeed, nproc_per_node))
    bar = None
    tail = []
    stopped_early, bad_loss = False, None
    with open(run.log_file, "a", encoding="utf-8") as log:
        log.write(
            f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} xtuner train"
            f"{' (resuming from ' + resume_from.name + ')' if resume_from else ''} =====\n"
        )
        process = subprocess.Popen(
            xtuner_command(run, deepspeed, nproc_per_node),
            env=env,
            cwd=run.work_dir,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            for line in process.stdout:
                log.write(line)
                tail = (tail + [line.rstrip()])[-40:]
                if on_line:
                    on_line(line)
                match = PROGRESS.search(line)
                if match:
                    done, total = int(match.group(1)), int(match.group(2))
                    if run.info().get("total_iters") != total:
                        run.update(total_iters=total)
                    if progress:
                        if bar is None:
                            from tqdm.auto import tqdm

                            bar = tqdm(total=total, desc=run.work_dir.name, unit="iter")
                        bar.n = done
                        bar.set_postfix(loss=match.group(5), lr=match.group(3), eta=match.group(4), refresh=False)
                        bar.refresh()
                    if not math.isfinite(float(match.group(5))):
                        bad_loss = (done, match.group(5))
                        break
                    if stop_after_iters and done >= stop_after_iters and run.latest_checkpoint() is not None:
                        stopped_early = True
                        break
            if stopped_early or bad_loss:
                _stop(process)
            process.wait()
        except BaseException:  # Ctrl-C in a notebook: stop the whole training process tree, keep the checkpoints
            _stop(process)
            run.update(status="interrupted")
            raise
        finally:
            if bar is not None:
                bar.close()
    if stopped_early:
        run.update(status="interrupted")
        raise KeyboardInterrupt(
            f"stopped after iteration {stop_after_iters} as asked; train(run) resumes from "
            f"{run.latest_checkpoint().name}"
        )
    if bad_loss:
        run.update(status="failed", failure=f"loss {bad_loss[1]} at iteration {bad_loss[0]}")
        raise TrainingFailed(
            f"the loss is {bad_loss[1]} at iteration {bad_loss[0]}: the run learns nothing, so it was stopped. Usual "
            f"causes: samples with no trained tokens (answers cut off by max_length, a gpt turn before the human "
            f"one), a learning rate far too high. Log: {run.log_file}"
        )
    final = run.final_checkpoint()
    crashed = any("Traceback (most recent call last)" in line or "Error" in line.split(":")[0] for line in tail)
    if final is None or crashed:
        run.update(status="failed")
        raise TrainingFailed(
            f"xtuner train did not finish (exit code {process.returncode}; the xtuner command reports 0 even after "
            f"a crash). Log: {run.log_file}\n--- last lines ---\n" + "\n".join(tail[-25:])
        )
    run.update(status="finished", final_checkpoint=str(final))
    return final


def loss_history(run: TrainRun) -> list:
    """(iteration, loss, lr) for every logged iteration of the run (resumed parts included)."""
    history = {}
    for match in PROGRESS.finditer(run.log_file.read_text(encoding="utf-8") if run.log_file.exists() else ""):
        history[int(match.group(1))] = (float(match.group(5)), float(match.group(3)))
    return [(step, loss, lr) for step, (loss, lr) in sorted(history.items())]


def _check_hardware(run: TrainRun) -> None:
    """The GPU recipe trains with AMP (mmengine's AmpOptimWrapper asserts a GPU): say so before XTuner starts."""
    import torch

    profile = run.info()["profile"]
    if needs_cuda(profile) and not torch.cuda.is_available():
        raise TrainingFailed(
            f"{run.work_dir.name} uses the {profile!r} recipe, which trains with AMP (fp16 loss scaling) "
            "and needs a CUDA GPU; torch sees none here. Train in tiny mode (COURSE_MODE=tiny) on this "
            "machine, or on a GPU machine"
        )


def checkpoint_table(run: TrainRun) -> List[Tuple[int, str, Optional[float]]]:
    """(iteration, file name, training loss logged at that iteration) for each checkpoint kept: the
    candidates to convert. A low training loss late in a run can mean memorising; pick by a held-out
    evaluation (lesson 11's evaluate_checkpoint), not by the loss."""
    losses = {step: loss for step, loss, _ in loss_history(run)}
    return [(step, path.name, losses.get(step)) for step, path in run.checkpoints()]


def _stop(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
