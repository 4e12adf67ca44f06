"""Load an InternVL2 checkpoint (tiny or real) the way its users do: AutoModel with remote code.

One rule for every transformers the kit installs (the course environment's 4.48, the serving environment's 4.57)
and newer: the weights come out as the files hold them, and `chat()` generates. InternVL2's remote code predates
transformers 4.50, from which a model class gets `generate` only by inheriting GenerationMixin; its language
model (InternLM2ForCausalLM) does not, so `chat()` fails there (InternVL#1068, ms-swift#4324). The loader gives
that one object the mixin back; nothing else about the checkpoint changes.

transformers 5 goes further: it builds the model on the meta device and fills in only what the checkpoint files
hold, so InternLM2's rotary table (a non-persistent buffer in InternVL2's code) is left as uninitialised memory,
and it renamed the key/value cache. The kit's own remote code (tiny checkpoint, course model and what is converted
from them) handles both; InternVL2's published code does not, so under transformers 5 the loader refuses it and
says what to install, instead of answering noise.
"""

import logging
from contextlib import contextmanager
from pathlib import Path
from typing import List, Optional, Tuple

import torch
from transformers import AutoModel, AutoTokenizer

from . import precision
from .config import checkpoint_problem
from .internvl_format import IMG_CONTEXT_TOKEN


def default_dtype(device: str, bf16: Optional[bool] = None) -> torch.dtype:
    """float32 on a CPU; on a GPU bfloat16 where it computes in it, else float16 (course_lib.precision)."""
    return precision.choose(device, bf16).dtype


def load_internvl(path, device: str = "cpu", dtype: Optional[torch.dtype] = None) -> Tuple[torch.nn.Module, object]:
    """(model in eval mode on device, tokenizer) from a checkpoint folder."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path} is not a checkpoint folder (no config.json)")
    problem = checkpoint_problem(path)  # before transformers turns it into a hub download or an import error
    if problem:
        raise ValueError(problem)
    refuse_old_remote_code(path)
    tokenizer = AutoTokenizer.from_pretrained(str(path), trust_remote_code=True)
    with _quiet_generation_mixin_notice():
        model = AutoModel.from_pretrained(
            str(path), torch_dtype=dtype or default_dtype(device), trust_remote_code=True, low_cpu_mem_usage=True
        )
    model = model.eval().to(device)
    model.img_context_token_id = tokenizer.convert_tokens_to_ids(IMG_CONTEXT_TOKEN)
    check_output_head(model, path)
    give_generate(model.language_model)
    return model, tokenizer


class _DropGenerationMixinNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "directly inherit from `GenerationMixin`" not in record.getMessage()


@contextmanager
def _quiet_generation_mixin_notice():
    """transformers 4.45-4.49 warns, at every load, that InternLM2ForCausalLM will lose `generate` from 4.50; the
    loader gives it back (give_generate), so the seven-line notice says nothing a student must act on."""
    notice = _DropGenerationMixinNotice()
    logger = logging.getLogger("transformers.modeling_utils")
    logger.addFilter(notice)
    try:
        yield
    finally:
        logger.removeFilter(notice)


KIT_REMOTE_CODE = Path(__file__).parent / "tiny_internvl2" / "remote_code"


def has_kits_remote_code(path: Path) -> bool:
    """Whether the checkpoint's modeling files are the kit's (tiny checkpoint, course model, their conversions)."""
    return all(
        (Path(path) / source.name).is_file() and (Path(path) / source.name).read_bytes() == source.read_bytes()
        for source in KIT_REMOTE_CODE.glob("modeling_*.py")
    )


def refuse_old_remote_code(path: Path, version: Optional[str] = None) -> None:
    """Under transformers 5, refuse a checkpoint whose remote code was written for transformers 4 (InternVL2's
    published code): it would load with an uninitialised rotary table and answer noise."""
    import transformers

    version = version or transformers.__version__
    if int(version.split(".")[0]) < 5 or has_kits_remote_code(path):
        return
    raise RuntimeError(
        f"{path}: its remote code (modeling_internlm2.py, modeling_internvl_chat.py) was written for transformers 4, "
        f"and this environment has transformers {version}. Under transformers 5 it loads with InternLM2's rotary "
        "table uninitialised and answers noise. Use the course environment (.venv, transformers 4.48) or the "
        "serving environment (.venv-serving, 4.57.6), or install a 4.x release: pip install 'transformers>=4.48,<5'"
    )


def check_output_head(model, path: Path) -> None:
    """The language model's output head must be its own weights when its config says it is not tied. A config
    whose top level keeps PretrainedConfig's default tie_word_embeddings=True makes transformers 4.5x replace the
    trained head with the input embeddings (the course model before 2026-12-07 did): refuse to answer noise."""
    language_model = model.language_model
    head, embeddings = language_model.get_output_embeddings(), language_model.get_input_embeddings()
    tied = head is not None and head.weight.data_ptr() == embeddings.weight.data_ptr()
    if tied and not getattr(language_model.config, "tie_word_embeddings", False):
        raise RuntimeError(
            f"{path}: transformers tied the language model's output head to its input embeddings, but llm_config says "
            "they are separate (tie_word_embeddings: false), so the trained head was dropped and the model would "
            f'answer noise. Set "tie_word_embeddings": false at the top level of {Path(path) / "config.json"} '
            "(the configuration class should copy it from llm_config), then load again."
        )


def weights_differing_from_files(model, path: Path) -> List[str]:
    """Names of the weights that the loaded model does not hold exactly as the checkpoint's safetensors files do
    (missing on either side, or different values): [] when the checkpoint loaded faithfully."""
    from safetensors.torch import load_file

    stored = {}
    for file in sorted(Path(path).glob("*.safetensors")):
        stored.update(load_file(str(file)))
    loaded = model.state_dict()
    differing = sorted(set(stored) ^ set(loaded))
    for name in sorted(set(stored) & set(loaded)):
        if not torch.equal(loaded[name].detach().cpu().float(), stored[name].float()):
            differing.append(name)
    return differing


def give_generate(language_model: torch.nn.Module) -> bool:
    """Make a language model that lacks `generate` (a pre-4.50 remote-code class under transformers >= 4.50) a
    generating one: its class is extended with GenerationMixin, and it gets the generation config that
    transformers makes for generating models at construction. True if it had to be done."""
    from transformers import GenerationConfig, GenerationMixin

    if isinstance(language_model, GenerationMixin):
        return False
    cls = type(language_model)
    language_model.__class__ = type(cls.__name__, (cls, GenerationMixin), {"__module__": cls.__module__})
    if getattr(language_model, "generation_config", None) is None:
        language_model.generation_config = GenerationConfig.from_model_config(language_model.config)
    return True


def parameter_counts(model) -> dict:
    parts = {
        name: sum(p.numel() for p in getattr(model, name).parameters())
        for name in ("vision_model", "mlp1", "language_model")
    }
    parts["total"] = sum(parts.values())
    return parts
