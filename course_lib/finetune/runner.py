"""Run `xtuner train` from Python: a fresh folder per run, a live progress bar, honest failure detection,
and resume after an interruption.

* A run lives in its own folder (runs/<name>-001, -002, ...): starting a run never touches an earlier one.
* The `xtuner` command re-launches `python .../train.py` and exits 0 even when training crashes, so success
  is judged from what the run leaves behind: the final iter_N.pth named by last_checkpoint, and no traceback.
* Interrupted (Ctrl-C, a closed laptop, a killed kernel)? Call train(run) again: it resumes from the last
  saved checkpoint (mmengine's load_from + resume), with the same config and data, and appends to the same log.
* Under DeepSpeed (`train(run, deepspeed="deepspeed_zero2")`) each iter_N.pth is a folder of DeepSpeed's files,
  one set per GPU: runs, resuming, checkpoint_table and the conversion take it as they take a file, and a folder
  whose save did not finish is refused by name (deepspeed_checkpoint_problem).
"""

import importlib.util
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from course_lib import precision
from course_lib.foodieqa import check_training_allowed
from course_lib.vqa_data import read_json_records, validate_xtuner_records

from .data_check import check_tokens, normalise_images
from .preflight import check_run, zero_stage_of
from .xtuner_config import BATCH_SIZE, PROFILES, profile_settings, render

PROGRESS = re.compile(r"Iter\(train\)\s*\[\s*(\d+)/(\d+)\].*?\blr: ([0-9.e+-]+).*?eta: (\S+).*?\bloss: ([0-9.naninf]+)")
RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


class TrainingFailed(RuntimeError):
    """Training stopped without its final checkpoint; the message quotes the end of the log."""


class IncompleteCheckpoint(RuntimeError):
    """A DeepSpeed checkpoint folder lacks files its save writes (it was interrupted); the message names them."""


# What DeepSpeed writes into save_dir/tag (deepspeed/runtime/engine.py, 0.18.9: save_checkpoint, _get_ckpt_name,
# _get_zero_ckpt_name); mmengine's DeepSpeedStrategy.save_checkpoint calls it with save_dir = work_dir and
# tag = "iter_N.pth" (mmengine/_strategy/deepspeed.py). First the model states, one file written by data-parallel
# rank 0 (one per rank under ZeRO-3, which partitions the weights too), then one optimizer-state file per rank.
DS_MODEL_STATES = "mp_rank_00_model_states.pt"
DS_ZERO3_MODEL_STATES = "zero_pp_rank_{}_mp_rank_00_model_states.pt"
DS_OPTIM_STATES = re.compile(r"(?:bf16_)?zero_pp_rank_(\d+)_mp_rank_00_optim_states\.pt")


def _whole(path: Path) -> bool:
    """Whether a file torch.save wrote was finished: it writes a zip archive whose central directory comes last
    (torch/serialization.py, _open_zipfile_writer), so a file cut short by a kill has none and zipfile refuses it."""
    try:
        with zipfile.ZipFile(path) as archive:
            return bool(archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def deepspeed_checkpoint_problem(folder: Path) -> Optional[str]:
    """What is missing from a DeepSpeed checkpoint folder; None when it holds everything its save writes.

    DeepSpeed marks a finished save by writing a `latest` file (the tag) into save_dir after every rank's files,
    but mmengine passes save_latest=False, so an XTuner run has none; mmengine's own last_checkpoint, written after
    the save returned (mmengine/hooks/checkpoint_hook.py), names only the newest. So the folder is checked the way
    DeepSpeed's zero_to_fp32.py reads it: the model states (which record how many data-parallel ranks saved,
    dp_world_size), one optimizer-state file per rank (zero_to_fp32 refuses a folder with fewer: "a checkpoint
    didn't get saved by one or more processes"), and every file whole.
    """
    folder = Path(folder)
    names = {path.name for path in folder.iterdir() if path.is_file()}
    zero3 = DS_MODEL_STATES not in names
    first = folder / (DS_ZERO3_MODEL_STATES.format(0) if zero3 else DS_MODEL_STATES)
    if not first.is_file():
        return (
            f"{folder} is not a DeepSpeed checkpoint, or its save stopped before anything was written: "
            f"it has no {DS_MODEL_STATES} (ZeRO 1-2) or {DS_ZERO3_MODEL_STATES.format(0)} (ZeRO-3)"
        )
    if not _whole(first):
        return f"{folder} is incomplete: {first.name} was cut short (its save was interrupted)"
    import torch

    # mmap: only the pickled record is read, not the weights. The run's own file (see training_env).
    states = torch.load(first, map_location="cpu", mmap=True, weights_only=False)
    ranks = int(states.get("dp_world_size") or 1)
    expected = [DS_ZERO3_MODEL_STATES.format(rank) for rank in range(ranks)] if zero3 else [DS_MODEL_STATES]
    optimizer_files = {int(m.group(1)): name for name in names if (m := DS_OPTIM_STATES.fullmatch(name))}
    if states.get("optimizer") is None:  # ZeRO keeps the optimizer's state in the per-rank files instead
        expected += [
            optimizer_files.get(rank, f"zero_pp_rank_{rank}_mp_rank_00_optim_states.pt") for rank in range(ranks)
        ]
    missing = [name for name in expected if name not in names]
    if missing:
        return f"{folder} is incomplete: {', '.join(missing)} missing (its save by {ranks} process(es) was interrupted)"
    cut = [name for name in sorted(set(expected) | set(optimizer_files.values())) if not _whole(folder / name)]
    if cut:
        return f"{folder} is incomplete: {', '.join(cut)} cut short (its save was interrupted)"
    return None


def training_checkpoint_problem(path: Path) -> Optional[str]:
    """Why path is not a checkpoint to resume from or convert; None when it is one: an iter_N.pth file as mmengine
    saves it, or a DeepSpeed folder of that name with all its files."""
    path = Path(path)
    if path.is_file():
        return None
    if path.is_dir():
        return deepspeed_checkpoint_problem(path)
    return f"{path} does not exist"


def require_checkpoint(path: Path) -> Path:
    """path, once training_checkpoint_problem finds nothing wrong with it; else an error that names what is missing."""
    problem = training_checkpoint_problem(path)
    if problem and not Path(path).exists():
        raise FileNotFoundError(problem)
    if problem:
        raise IncompleteCheckpoint(
            f"{problem}. It is not a checkpoint to resume from or convert: pick another one "
            "(runner.checkpoint_table(run) lists the complete ones), or delete the folder."
        )
    return Path(path)


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
        """The checkpoint mmengine saved last (its last_checkpoint file), if it still exists: a file, or a DeepSpeed
        folder. mmengine writes last_checkpoint once the save returned, so a folder it names that is incomplete
        was damaged since: resuming from it would fail inside DeepSpeed, and the error says what to do instead."""
        marker = self.work_dir / "last_checkpoint"
        if not marker.is_file():
            return None
        path = Path(marker.read_text().strip())
        if not path.exists():
            return None
        problem = training_checkpoint_problem(path)
        if problem:
            earlier = [older for _, older in self.checkpoints() if older != path]
            instead = f"write {earlier[-1]} into {marker} to resume from there, or " if earlier else ""
            raise IncompleteCheckpoint(
                f"{marker} names {path.name}, but {problem}. To go on, {instead}start a new run."
            )
        return path

    def final_checkpoint(self) -> Optional[Path]:
        """iter_<total>.pth once it is complete (a DeepSpeed folder whose save was cut short is not)."""
        total = self.info().get("total_iters")
        if not total:
            return None
        path = self.work_dir / f"iter_{total}.pth"
        return path if path.exists() and training_checkpoint_problem(path) is None else None

    def checkpoints(self) -> List[Tuple[int, Path]]:
        """(iteration, iter_N.pth) of every complete checkpoint still in the run folder (files, or DeepSpeed
        folders with all their files), oldest first."""
        found = []
        for path in self.work_dir.glob("iter_*.pth"):
            number = path.stem[len("iter_") :]
            if number.isdigit() and training_checkpoint_problem(path) is None:
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
    bf16: Optional[bool] = None,
    settings: Optional[dict] = None,
) -> TrainRun:
    """Create runs_root/<name>-NNN with a copy of the config and the paths it trains on.

    bf16 (the GPU recipe): whether the GPU that trains computes in bfloat16; None asks this machine's GPU
    (course_lib.precision). It decides the run's precision once, recorded in run.json: the config's
    FrozenFloat16Hook on a GPU without it, and the DeepSpeed config's fp16 or bf16 (deepspeed_argument).
    settings: the run's own max_epochs or lora_r in place of the profile's (xtuner_config.RUN_SETTINGS; lesson 11's
    sweep), recorded in run.json.

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
    profile_settings(profile, settings)  # refuses a setting a run may not change, before anything is made

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
    check_warmup(profile, train_json, settings)
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
        chosen = run_precision(profile, bf16)
        rendered = {**paths, "train_json": data.get("trained_on", paths["train_json"])}
        text = render(profile, **rendered, bf16=chosen != "float16", settings=settings)
        run.config.write_text(text, encoding="utf-8")
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
                "precision": chosen,
                "longest_sample_tokens": checked.longest,
                "foodieqa_licence_acknowledged": bool(acknowledge_foodieqa_licence),
                **({"settings": dict(settings)} if settings else {}),
            },
            indent=2,
            ensure_ascii=False,
        )
        + "\n"
    )
    return run


def run_precision(profile: str, bf16: Optional[bool] = None) -> str:
    """float32 for the CPU recipe; for the GPU recipe bfloat16 where the GPU computes in it, else float16. Without
    a GPU here (a run made on one machine to train on another), the committed recipe's assumption: bfloat16."""
    if not needs_cuda(profile):
        return "float32"
    if bf16 is None:
        bf16 = precision.gpu_has_bf16() if precision.cuda_available() else True
    return precision.choose("cuda", bf16, gpu="the GPU").name


MIN_WARMUP_ITERS = 2


def check_warmup(profile: str, train_json: Path, settings: Optional[dict] = None) -> None:
    """Refuse (before anything is made) data too small for the config's warm-up to work.

    The warm-up lasts int(warmup_ratio * iterations) iterations. mmengine refuses 0 ("end should be larger
    than begin"), and its LinearLR never reaches the full learning rate: after k warm-up iterations the
    cosine decay starts from (k - 1) / k of it. With k = 1 that is 0: the run trains nothing at all.
    """
    settings = profile_settings(profile, settings)
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
    assignment"). mmengine resumes by itself from `load_from` when `resume = True`. A DeepSpeed folder is named
    the same way: mmengine's DeepSpeedStrategy.resume splits it into DeepSpeed's save_dir and tag.
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
    """Whether XTuner would train the GPU recipe in one process that has no process group, with or without DeepSpeed.

    XTuner's InternVL_V1_5 calls torch.distributed.get_rank() in every forward pass (xtuner/model/internvl.py,
    _llm_forward). With NPROC_PER_NODE=1 `xtuner train` starts plain `python train.py` (launcher "none"), and
    the first iteration fails with "Default process group has not been initialized" (seen on an H200,
    2026-12-04). DeepSpeed makes a group itself, but without torchrun's variables it asks MPI for them
    (deepspeed/comm/comm.py, init_distributed -> mpi_discovery): "No module named 'mpi4py'" here, which XTuner's
    [deepspeed] extra installs and the kit does not. Several processes go through torchrun, and the CPU recipe's
    SingleProcessGroupHook makes a gloo group before DeepSpeed looks; this one case is started as torchrun would.
    """
    return needs_cuda(run.info()["profile"]) and nproc_per_node == 1


def deepspeed_argument(run: TrainRun, deepspeed: Optional[str]) -> Optional[str]:
    """What `xtuner train --deepspeed` gets: a copy of the DeepSpeed config in the run folder with its "auto"
    precisions decided by the kit, not by XTuner.

    XTuner resolves "auto" in xtuner/tools/utils.py (auto_dtype_of_deepspeed_config) with its device module. On a
    CPU that is torch.cpu: it has no is_bf16_supported (AttributeError, XTuner 0.2.0 with torch 2.12), and
    torch.cpu.is_available() would turn fp16 on; the CPU recipe trains in float32 (cpu_hooks.Float32Hook), so both
    go off. On a GPU it asks torch.cuda.is_bf16_supported(), which answers True on a V100 or T4 (it can store
    bfloat16 there), and bf16 wins over fp16: DeepSpeed would train in bfloat16 on GPUs that cannot compute in it.
    The run's precision (run.json, decided by new_run from course_lib.precision) turns on bf16 or fp16 instead.
    """
    if not deepspeed:
        return deepspeed
    source = Path(deepspeed)
    if not source.is_file():  # a name: XTuner's file of that name (xtuner/configs/__init__.py, cfgs_name_path)
        configs = Path(importlib.util.find_spec("xtuner").origin).parent / "configs" / "deepspeed"
        source = configs / f"{deepspeed}.json"
        if not source.is_file():
            known = sorted(path.stem for path in configs.glob("*.json"))
            raise FileNotFoundError(f"DeepSpeed config {deepspeed!r} is neither a file nor one of XTuner's: {known}")
    config = json.loads(source.read_text(encoding="utf-8"))
    chosen = run.info().get("precision") or run_precision(run.info()["profile"])
    wanted = {"fp16": chosen == "float16", "bf16": chosen == "bfloat16"}
    for key, enabled in wanted.items():
        if isinstance(config.get(key), dict) and config[key].get("enabled") == "auto":
            config[key]["enabled"] = enabled
    suffix = {"float32": "cpu", "float16": "fp16", "bfloat16": "bf16"}[chosen]
    target = run.config.parent / f"{source.stem}-{suffix}.json"
    target.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return str(target)


def resume_deepspeed(run: TrainRun, deepspeed: Optional[str], resume_from: Optional[Path]) -> Optional[str]:
    """The DeepSpeed config to go on with: a DeepSpeed folder resumes only under DeepSpeed (train(run) again takes
    the one the run started with, from run.json), a one-file checkpoint only without it."""
    if resume_from is None:
        return deepspeed
    if resume_from.is_dir() and not deepspeed:
        deepspeed = run.info().get("deepspeed")
        if not deepspeed:
            raise TrainingFailed(
                f"{resume_from} is a DeepSpeed checkpoint folder, and run.json does not say which DeepSpeed config "
                "saved it: call train(run, deepspeed=...) with that config (e.g. 'deepspeed_zero2')"
            )
    if resume_from.is_file() and deepspeed:
        raise TrainingFailed(
            f"{resume_from} was saved without DeepSpeed (one file); DeepSpeed resumes only its own folders: "
            "call train(run) without deepspeed=, or start a new run to train with DeepSpeed"
        )
    return deepspeed


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
    go_on: bool = False,
    free_bytes: Optional[int] = None,
) -> Path:
    """Train (or resume) the run until its final checkpoint; returns that checkpoint.

    stop_after_iters interrupts the run once that iteration is logged and a checkpoint exists (the lesson
    uses it to show resuming; tests use it to prove that resumed runs end where uninterrupted ones do).
    The GPU recipe first passes the memory pre-flight (preflight.check_run): a run whose estimate does not fit the
    GPU's free memory (free_bytes, default: asked of the GPU) is refused with settings that fit, unless go_on.
    """
    if run.finished:
        return run.final_checkpoint()
    _check_hardware(run)
    resume_from = run.latest_checkpoint()
    deepspeed = resume_deepspeed(run, deepspeed, resume_from)
    if needs_cuda(run.info()["profile"]):
        report = memory_preflight(run, deepspeed, nproc_per_node, free_bytes, go_on)
        print(report.text.splitlines()[-1] if report.fits else report.text, flush=True)
    command = xtuner_command(run, deepspeed_argument(run, deepspeed), nproc_per_node)
    set_resume(run.config, resume_from)
    run.update(status="running", resumed_from=str(resume_from) if resume_from else None, deepspeed=deepspeed)
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
            command,
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
        last = run.work_dir / f"iter_{run.info().get('total_iters')}.pth"
        unfinished = f"{training_checkpoint_problem(last)}.\n" if last.is_dir() else ""  # a DeepSpeed save cut short
        raise TrainingFailed(
            f"xtuner train did not finish (exit code {process.returncode}; the xtuner command reports 0 even after "
            f"a crash). {unfinished}Log: {run.log_file}\n--- last lines ---\n" + "\n".join(tail[-25:])
        )
    run.update(status="finished", final_checkpoint=str(final))
    return final


def memory_preflight(
    run: TrainRun,
    deepspeed: Optional[str] = None,
    nproc_per_node: int = 1,
    free_bytes: Optional[int] = None,
    go_on: bool = False,
):
    """The run's memory pre-flight (preflight.check_run) as train() launches it: its config, its model, the GPU
    count and ZeRO stage, its longest sample (new_run measured it). Raises preflight.DoesNotFit when the estimate
    exceeds the free memory, naming settings that fit, unless go_on; returns the report."""
    return check_run(
        run.config,
        run.info()["model_path"],
        gpus=nproc_per_node,
        zero_stage=zero_stage_of(deepspeed),
        free_bytes=free_bytes,
        go_on=go_on,
        sequence_tokens=run.info().get("longest_sample_tokens"),
    )


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
    """(iteration, file or DeepSpeed folder name, training loss logged at that iteration) for each complete
    checkpoint kept: the candidates to convert. A low training loss late in a run can mean memorising; pick by a
    held-out evaluation (lesson 11's evaluate_checkpoint), not by the loss."""
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
