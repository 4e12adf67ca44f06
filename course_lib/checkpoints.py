"""Checkpoint folder helpers.

A remote-code checkpoint (InternVL2, tiny or real) loads only if its .py files sit next to config.json.
save_pretrained and XTuner's convert_to_official write config and weights but not those files, which is
why a freshly converted InternVL2 folder fails to load; copy_remote_code puts them back.
"""
import filecmp
import shutil
from pathlib import Path
from typing import List


def remote_code_files(checkpoint: Path) -> List[Path]:
    return sorted(p for p in Path(checkpoint).glob("*.py") if p.is_file())


def copy_remote_code(source: Path, target: Path) -> List[str]:
    """Copy the source checkpoint's .py files into target; returns the names copied.

    A file that already exists in target with different content is left alone and reported as an
    error, so nobody's edited code is overwritten silently.
    """
    source, target = Path(source), Path(target)
    files = remote_code_files(source)
    if not files:
        raise FileNotFoundError(f"{source} has no .py files: is it a remote-code checkpoint folder?")
    copied, conflicts = [], []
    for path in files:
        destination = target / path.name
        if destination.exists():
            if not filecmp.cmp(path, destination, shallow=False):
                conflicts.append(path.name)
            continue
        shutil.copy2(path, destination)
        copied.append(path.name)
    if conflicts:
        raise FileExistsError(
            f"{target} already has different versions of {', '.join(conflicts)}; "
            "remove them first if they should be replaced by the source checkpoint's"
        )
    return copied


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model")


def copy_tokenizer(source: Path, target: Path) -> List[str]:
    """Copy the tokenizer files (chat template included) that exist in source into target."""
    copied = []
    for name in TOKENIZER_FILES:
        if (Path(source) / name).is_file():
            shutil.copy2(Path(source) / name, Path(target) / name)
            copied.append(name)
    return copied
