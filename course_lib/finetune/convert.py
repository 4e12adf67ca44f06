"""Turn a LoRA training checkpoint into a checkpoint folder people can load, serve and share.

XTuner's convert_to_official.py builds the model from the run's config, loads the iter_N.pth weights,
merges LoRA into the language model and saves bf16 weights plus the base model's tokenizer. It leaves out
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

from .runner import TrainRun, training_env


class ConversionFailed(RuntimeError):
    """The conversion did not produce a loadable checkpoint; the message says what is missing."""


def convert_script() -> Path:
    import xtuner

    return Path(xtuner.__file__).parent / "configs" / "internvl" / "v1_5" / "convert_to_official.py"


def convert_command(config: Path, checkpoint: Path, out_dir: Path, python: str = sys.executable) -> list:
    """XTuner's conversion as a terminal user runs it: python convert_to_official.py CONFIG iter_N.pth OUT.
    (Its output still lacks the remote-code .py files: copy them from the base checkpoint afterwards.)"""
    return [str(python), str(convert_script()), str(config), str(checkpoint), str(out_dir)]


def convert_checkpoint(
    run: TrainRun,
    out_dir: Path,
    checkpoint: Optional[Path] = None,
    overwrite: bool = False,
    check_image=None,
    log=print,
) -> Path:
    """Merge the run's LoRA checkpoint (default: its final one) into a full checkpoint folder at out_dir."""
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
    checkpoint = Path(checkpoint or run.final_checkpoint() or "")
    if not checkpoint.is_file():
        raise FileNotFoundError(f"no checkpoint to convert in {run.work_dir} (train the run to the end first)")
    base = Path(run.info()["model_path"])
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=out_dir.name + "-converting-", dir=out_dir.parent))
    try:
        log(f"Merging LoRA from {checkpoint.name} into {base.name} ...")
        command = convert_command(run.config, checkpoint, staging)
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
