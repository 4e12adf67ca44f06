"""Checkpoint folder helpers.

A remote-code checkpoint (InternVL2, tiny or real) loads only if its .py files sit next to config.json.
save_pretrained and XTuner's convert_to_official write config and weights but not those files, which is
why a freshly converted InternVL2 folder fails to load; copy_remote_code puts them back.
"""

import filecmp
import importlib.util
import json
import shutil
from pathlib import Path
from typing import Dict, List

# InternLM2-chat's tokenizer chat_template, which InternVL2-2B's tokenizer carries (source and licence: its README).
INTERNLM2_CHAT_TEMPLATE = Path(__file__).resolve().parent.parent / "assets" / "chat-templates" / "internlm2_chat.json"


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


def checkpoint_conversation(checkpoint: Path):
    """The conversation template the checkpoint's own chat() uses: its conversation.py (the file shipped
    next to config.json, not course_lib's copy), the template named by config.json's "template", and
    config.json's "system_message" when it sets one (a converted fine-tune records the line it was
    trained with), else the template's default."""
    checkpoint = Path(checkpoint)
    code = checkpoint / "conversation.py"
    if not code.is_file():
        raise FileNotFoundError(
            f"{checkpoint} has no conversation.py: InternVL2 checkpoints ship their chat templates "
            "in it (copy_remote_code puts it back into a converted folder)"
        )
    config = json.loads((checkpoint / "config.json").read_text(encoding="utf-8"))
    spec = importlib.util.spec_from_file_location(f"_conversation_of_{abs(hash(str(checkpoint)))}", code)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # standard library only, in InternVL2's files and in the kit's
    conversation = module.get_conv_template(config.get("template", "internlm2-chat"))
    if config.get("system_message"):
        conversation.system_message = config["system_message"]
    return conversation


def chat_template_fields(checkpoint) -> dict:
    """LMDeploy ChatTemplateConfig fields that render the prompt the checkpoint's own chat() builds, which is
    also the layout XTuner trains on: the checkpoint's conversation template and system line, turns joined by
    the separator alone. Without them LMDeploy 0.18 renders the tokenizer's `chat_template`; InternVL2-2B's
    (InternLM2-chat's) writes a newline after every <|im_end|> and no system line, so the model would be
    served another prompt than the one it was trained and evaluated with. The separator is the stop word:
    the checkpoint's tokenizer may not list it as an end token (lmdeploy#2000/#2120: "the model never stops")."""
    conversation = checkpoint_conversation(checkpoint)
    style = getattr(getattr(conversation, "sep_style", None), "name", "MPT")  # the kit's copy has only MPT
    prefix, marker, suffix = conversation.system_template.partition("{system_message}")
    if style != "MPT" or not marker:
        raise ValueError(
            f"{checkpoint}: conversation template {conversation.name!r} (style {style}) is not the "
            "separator-joined (MPT) layout of InternVL2's templates; give LMDeploy a --chat-template yourself"
        )
    tokenizer_config = json.loads((Path(checkpoint) / "tokenizer_config.json").read_text(encoding="utf-8"))
    bos = tokenizer_config.get("bos_token") or ""
    bos = bos.get("content", "") if isinstance(bos, dict) else bos  # written by the tokenizer, as its template does
    sep = conversation.sep
    return dict(
        model_name="base",
        system=bos + prefix,
        meta_instruction=conversation.system_message,
        eosys=suffix + sep,
        user=conversation.roles[0],
        eoh=sep,
        assistant=conversation.roles[1],
        eoa=sep,
        separator="",
        stop_words=[sep.strip()],
    )


def internlm2_chat_template() -> str:
    return json.loads(INTERNLM2_CHAT_TEMPLATE.read_text(encoding="utf-8"))["chat_template"]


def prompt_layouts(checkpoint, tokenizer, question: str) -> Dict[str, str]:
    """One text question laid out three ways (BOS included): by the checkpoint's own chat() (XTuner trains on
    this layout; the kit serves it on both backends), by this tokenizer's chat_template, and by InternVL2-2B's
    tokenizer chat_template (InternLM2-chat's), which LMDeploy would use for the real checkpoint by default."""
    conversation = checkpoint_conversation(checkpoint)
    conversation.append_message(conversation.roles[0], question)
    conversation.append_message(conversation.roles[1], None)
    messages = [{"role": "user", "content": question}]

    def rendered(template=None):
        return tokenizer.apply_chat_template(
            messages, chat_template=template, tokenize=False, add_generation_prompt=True
        )

    return {
        "chat() and XTuner (what the kit serves)": (tokenizer.bos_token or "") + conversation.get_prompt(),
        "this tokenizer's chat_template": rendered(),
        "InternVL2-2B's tokenizer chat_template": rendered(internlm2_chat_template()),
    }
