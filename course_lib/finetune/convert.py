"""Turn a LoRA training checkpoint into a checkpoint folder people can load, serve and share.

XTuner's convert_to_official.py builds the model from the run's config, loads the iter_N.pth weights,
merges LoRA into the language model and saves bf16 weights plus the base model's tokenizer. Under DeepSpeed
iter_N.pth is a folder of DeepSpeed's files; XTuner reads it (xtuner.model.utils.guess_load_checkpoint) in
float16, so here it is read in float32 first (FOLDER_CONVERSION) and converts to what a file would. It leaves out
the remote-code .py files, so the folder does not load (xtuner#901, InternVL#768): they are copied from the
base checkpoint here. The tokenizer keeps its chat template, and config.json gets the system line the run
trained with (XTuner's, recorded in run.json), which chat() and the kit's LMDeploy template then use. The
result is loaded and asked a question before it is moved into place. An existing folder is replaced only with
overwrite=True and only when it is an earlier conversion; the run folder, the base model and any folder that
holds a run or a checkpoint are refused whatever the flags.
"""

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional

from course_lib.checkpoints import copy_remote_code

from .runner import TrainRun, require_checkpoint, training_env


class ConversionFailed(RuntimeError):
    """The conversion did not produce a loadable checkpoint; the message says what is missing."""


def convert_script() -> Path:
    import xtuner

    return Path(xtuner.__file__).parent / "configs" / "internvl" / "v1_5" / "convert_to_official.py"


def convert_command(config: Path, checkpoint: Path, out_dir: Path, python: str = sys.executable) -> list:
    """XTuner's conversion as a terminal user runs it: python convert_to_official.py CONFIG iter_N.pth OUT.
    (Its output still lacks the remote-code .py files: copy them from the base checkpoint afterwards.)"""
    return [str(python), str(convert_script()), str(config), str(checkpoint), str(out_dir)]


# convert_to_official.py on a DeepSpeed folder, in one process. XTuner's guess_load_checkpoint reads a folder with
# get_state_dict_from_zero_checkpoint at its default dtype, float16 (xtuner/utils/zero_to_any_dtype.py), before the
# bfloat16 cast, and rounding twice moves some values one bfloat16 step away from the trained ones (the test of
# DeepSpeed checkpoints counts them). Read at float32 and saved as mmengine saves a file ({"state_dict": ...}), the
# folder converts as a file of the same weights would.
FOLDER_CONVERSION = """
import os, runpy, sys, tempfile
import torch
from xtuner.utils.zero_to_any_dtype import get_state_dict_from_zero_checkpoint
script, config, folder, out = sys.argv[1:]
state = get_state_dict_from_zero_checkpoint(os.path.dirname(folder), os.path.basename(folder), dtype=torch.float32)
with tempfile.TemporaryDirectory(prefix="float32-", dir=os.path.dirname(os.path.abspath(out))) as scratch:
    weights = os.path.join(scratch, "trained.pth")
    torch.save({"state_dict": state}, weights)
    sys.argv = [script, config, weights, out]
    runpy.run_path(script, run_name="__main__")
"""


def folder_convert_command(config: Path, folder: Path, out_dir: Path, python: str = sys.executable) -> list:
    """convert_command for a DeepSpeed checkpoint folder, read in float32 (FOLDER_CONVERSION)."""
    return [str(python), "-c", FOLDER_CONVERSION, str(convert_script()), str(config), str(folder), str(out_dir)]


def convert_checkpoint(
    run: TrainRun,
    out_dir: Path,
    checkpoint: Optional[Path] = None,
    overwrite: bool = False,
    check_image=None,
    log=print,
) -> Path:
    """Merge the run's LoRA checkpoint (default: its final one; a file, or a DeepSpeed folder with all its files)
    into a full checkpoint folder at out_dir."""
    out_dir = Path(out_dir)
    if "." in out_dir.name:
        raise ValueError(
            f"{out_dir.name!r}: transformers cannot load remote code from a folder whose name has a dot; "
            "use letters, digits, '-' and '_'"
        )
    _refuse_to_touch(run, out_dir)
    if out_dir.exists() and not overwrite:
        raise FileExistsError(f"{out_dir} already exists; choose another folder or pass overwrite=True to replace it")
    if out_dir.exists() and not (out_dir / "conversion.json").is_file():
        raise FileExistsError(
            f"{out_dir} exists and is not an earlier conversion (no conversion.json): overwrite=True "
            "replaces only a folder this function wrote; choose a new folder"
        )
    checkpoint = checkpoint or run.final_checkpoint()
    if checkpoint is None:
        raise FileNotFoundError(f"no checkpoint to convert in {run.work_dir} (train the run to the end first)")
    checkpoint = require_checkpoint(checkpoint)  # a DeepSpeed folder cut short is refused, by name
    base = Path(run.info()["model_path"])
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=out_dir.name + "-converting-", dir=out_dir.parent))
    try:
        log(f"Merging LoRA from {checkpoint.name} into {base.name} ...")
        command = (folder_convert_command if checkpoint.is_dir() else convert_command)(run.config, checkpoint, staging)
        result = subprocess.run(command, env=training_env(run), capture_output=True, text=True)
        if not (staging / "config.json").is_file() or not any(staging.glob("*.safetensors")):
            raise ConversionFailed(
                f"convert_to_official.py wrote no weights (exit {result.returncode}):\n"
                + (result.stdout + result.stderr)[-3000:]
            )
        copied = copy_remote_code(base, staging)
        log(f"Copied the remote code the conversion leaves out: {', '.join(copied) or 'none needed'}")
        _check_tokenizer(base, staging)
        system_message = _record_system_message(run, staging, log)
        answer = _check_loads_and_answers(staging, check_image)
        (staging / "conversion.json").write_text(
            json.dumps(
                {
                    "base_model": str(base),
                    "run": str(run.work_dir),
                    "checkpoint": str(checkpoint),
                    "check_answer": answer,
                    "system_message": system_message,
                },
                indent=2,
                ensure_ascii=False,
            )
            + "\n"
        )
        if out_dir.exists():  # overwrite=True: replace only now that the new folder is known to work
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log(f"Converted checkpoint: {out_dir} (it loads and answers: {answer!r})")
    return out_dir


def _refuse_to_touch(run: TrainRun, out_dir: Path) -> None:
    """The output folder must not be, hold or sit inside the run, the base model or any run or checkpoint."""
    target = out_dir.resolve()
    protected = {"the run folder": run.work_dir}
    if run.info_file.is_file():
        protected["the base model"] = Path(run.info()["model_path"])
    for what, folder in protected.items():
        folder = Path(folder).resolve()
        if target == folder or folder in target.parents or target in folder.parents:
            raise ValueError(
                f"{out_dir} is {what} ({folder}) or inside or around it; converting there would "
                "overwrite it: choose a new folder, e.g. course_lib.finetune.plan.converted_dir(run, cache)"
            )
    if target.is_dir() and not (target / "conversion.json").is_file():
        found = [p for p in ("run.json", "config.json", "last_checkpoint") if (target / p).exists()]
        found += [p.name for p in target.glob("iter_*.pth")][:1]
        if found:
            raise ValueError(
                f"{out_dir} holds a training run or a checkpoint ({', '.join(found)}); converting "
                "there would overwrite it: choose a new folder"
            )


def _record_system_message(run: TrainRun, converted: Path, log) -> Optional[str]:
    """Write the system line the run trained with into the converted config.json ("system_message"), so that
    chat() and LMDeploy (checkpoints.chat_template_fields) serve the fine-tuned model the prompt it learnt.
    XTuner's dataset uses its own line, not the base checkpoint's default (InternVL2-2B's is Chinese); runs
    made before run.json recorded it keep the base model's."""
    system_message = run.info().get("system_message")
    if not system_message:
        return None
    config_file = converted / "config.json"
    config = json.loads(config_file.read_text(encoding="utf-8"))
    if config.get("system_message") != system_message:
        log(f"System line the run trained with, now the model's default: {system_message!r}")
        config["system_message"] = system_message
        config_file.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return system_message


def _check_tokenizer(base: Path, converted: Path) -> None:
    config = json.loads((converted / "tokenizer_config.json").read_text(encoding="utf-8"))
    base_config = json.loads((base / "tokenizer_config.json").read_text(encoding="utf-8"))
    if base_config.get("chat_template") and config.get("chat_template") != base_config["chat_template"]:
        raise ConversionFailed(f"{converted} lost the base tokenizer's chat template; LMDeploy would use none")


def _check_loads_and_answers(folder: Path, image=None) -> str:
    import torch  # torch and transformers: loaded only when a converted model is checked

    from course_lib.asking import ask
    from course_lib.models import load_internvl

    model, tokenizer = load_internvl(folder, "cpu" if not torch.cuda.is_available() else "cuda")
    if image is None:  # a blank tile: the check is that the converted folder loads and answers, not what it says
        image = torch.zeros(1, 3, model.config.force_image_size, model.config.force_image_size)
    answer = ask(model, tokenizer, image, "图中的菜是什么？", dict(max_new_tokens=16, do_sample=False))
    del model
    if not isinstance(answer, str):
        raise ConversionFailed(f"{folder} loaded but chat() returned {type(answer).__name__}, not text")
    return answer
