"""Build (or find in the cache) the tiny InternVL2-shaped checkpoint.

The folder it writes is what a real InternVL2 checkpoint folder is: config.json with auto_map and the
tiling fields, the remote-code .py files, a tokenizer with its chat template, and safetensors weights
in bfloat16. It is built from a fixed seed, so the same source gives the same bytes; the folder name
carries a hash of the source (remote code, tokenizer corpus, this spec), so a change in any of them
builds a new folder and an unchanged source is never rebuilt.
"""

import shutil
import time
from pathlib import Path

from course_lib import internvl_format
from course_lib.builds import Artefact
from course_lib.internvl_format import IMG_CONTEXT_TOKEN

REMOTE_CODE_DIR = Path(__file__).parent / "remote_code"
REMOTE_CODE_FILES = sorted(p.name for p in REMOTE_CODE_DIR.glob("*.py") if p.name != "__init__.py")
SOURCE_FILES = [
    Path(__file__),
    Path(__file__).parent / "tokenizer.py",
    Path(__file__).parent / "corpus.py",
    Path(internvl_format.__file__),
] + [REMOTE_CODE_DIR / name for name in REMOTE_CODE_FILES]
SEED = 20240711

# The model: InternVL2-2B's structure at a size that trains on a laptop CPU. Image size, patch size and
# downsample ratio are the real ones, so a tile still costs 256 tokens and the tiling fields mean the same.
SPEC = {
    "tokenizer_max_vocab_size": 4096,  # BPE stops earlier: the corpus is small
    "system_message": "You are an AI assistant whose name is InternLM (书生·浦语).",
    "vision_config": {
        "architectures": ["InternVisionModel"],
        "image_size": 448,
        "patch_size": 14,
        "hidden_size": 96,
        "intermediate_size": 384,
        "num_attention_heads": 4,
        "num_hidden_layers": 3,
        "qkv_bias": True,
        "qk_normalization": False,
        "norm_type": "layer_norm",
        "layer_norm_eps": 1e-6,
        "hidden_act": "gelu",
        "drop_path_rate": 0.0,
        "initializer_factor": 1.0,
        "initializer_range": 0.02,
    },
    "llm_config": {
        "architectures": ["InternLM2ForCausalLM"],
        "hidden_size": 256,
        "intermediate_size": 688,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 8192,
        "rope_theta": 1000000,
        "rms_norm_eps": 1e-5,
        "hidden_act": "silu",
        "bias": False,
        "tie_word_embeddings": False,
        "attn_implementation": "eager",
        "initializer_range": 0.02,
    },
    "chat_config": {
        "force_image_size": 448,
        "downsample_ratio": 0.5,
        "ps_version": "v2",
        "select_layer": -1,
        "template": "internlm2-chat",
        "dynamic_image_size": True,
        "use_thumbnail": True,
        "min_dynamic_patch": 1,
        "max_dynamic_patch": 12,
    },
}


def _make(staging: Path, target: Path, inputs: dict, log) -> dict:
    return _build(staging, target, log)


TINY_CHECKPOINT = Artefact(
    "tiny-internvl2",
    "the tiny InternVL2 checkpoint: InternVL2-2B's structure, seeded random weights",
    {"spec": SPEC, "seed": SEED},
    tuple(SOURCE_FILES),
    _make,
)


def source_hash() -> str:
    return TINY_CHECKPOINT.source_hash()


def checkpoint_dir(cache: Path) -> Path:
    """The checkpoint's folder in the cache folder `cache` (the setup's, handed down: course_lib.config)."""
    return TINY_CHECKPOINT.folder(cache)


def is_complete(path: Path) -> bool:
    return TINY_CHECKPOINT.is_complete(path)


def ensure_tiny_checkpoint(cache: Path, log=print) -> Path:
    """Return the checkpoint folder in `cache`, building it first if this source has not been built yet."""
    return TINY_CHECKPOINT.ensure(cache, log=log)


def _build(staging: Path, target: Path, log) -> dict:
    import torch

    from course_lib.models import parameter_counts

    from .remote_code.configuration_internvl_chat import InternVLChatConfig
    from .remote_code.modeling_internvl_chat import InternVLChatModel
    from .tokenizer import build_tokenizer

    started = time.perf_counter()
    log(f"Building the tiny InternVL2 checkpoint in {target} (seeded; a few seconds) ...")
    tokenizer = build_tokenizer(staging, SPEC["tokenizer_max_vocab_size"], SPEC["system_message"])
    llm = dict(SPEC["llm_config"])
    llm.update(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config = InternVLChatConfig(
        vision_config=SPEC["vision_config"],
        llm_config=llm,
        system_message=SPEC["system_message"],
        architectures=["InternVLChatModel"],
        auto_map={
            "AutoConfig": "configuration_internvl_chat.InternVLChatConfig",
            "AutoModel": "modeling_internvl_chat.InternVLChatModel",
            "AutoModelForCausalLM": "modeling_internvl_chat.InternVLChatModel",
        },
        torch_dtype="bfloat16",
        **SPEC["chat_config"],
    )
    torch.manual_seed(SEED)
    model = InternVLChatModel(config, use_flash_attn=False)
    model.img_context_token_id = tokenizer.convert_tokens_to_ids(IMG_CONTEXT_TOKEN)
    model = model.to(torch.bfloat16)
    model.save_pretrained(str(staging), safe_serialization=True)
    for name in REMOTE_CODE_FILES:
        shutil.copy2(REMOTE_CODE_DIR / name, staging / name)
    parts = parameter_counts(model)
    n_params = parts.pop("total")
    info = {
        "seed": SEED,
        "parameters": n_params,
        "parameters_by_part": parts,
        "vocab_size": len(tokenizer),
        "build_seconds": round(time.perf_counter() - started, 2),
        "torch": torch.__version__,
    }
    size = sum(p.stat().st_size for p in staging.iterdir()) / 1e6
    log(f"Built {target.name}: {n_params / 1e6:.2f} M parameters, {size:.1f} MB, {info['build_seconds']} s")
    return info
