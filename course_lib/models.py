"""Load an InternVL2 checkpoint (tiny or real) the way its users do: AutoModel with remote code."""

from pathlib import Path
from typing import Optional, Tuple

import torch
from transformers import AutoModel, AutoTokenizer

from .config import checkpoint_problem
from .internvl_format import IMG_CONTEXT_TOKEN


def default_dtype(device: str) -> torch.dtype:
    return torch.bfloat16 if device.startswith("cuda") else torch.float32


def load_internvl(path, device: str = "cpu", dtype: Optional[torch.dtype] = None) -> Tuple[torch.nn.Module, object]:
    """(model in eval mode on device, tokenizer) from a checkpoint folder."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path} is not a checkpoint folder (no config.json)")
    problem = checkpoint_problem(path)  # before transformers turns it into a hub download or an import error
    if problem:
        raise ValueError(problem)
    tokenizer = AutoTokenizer.from_pretrained(str(path), trust_remote_code=True)
    model = AutoModel.from_pretrained(
        str(path), torch_dtype=dtype or default_dtype(device), trust_remote_code=True, low_cpu_mem_usage=True
    )
    model = model.eval().to(device)
    model.img_context_token_id = tokenizer.convert_tokens_to_ids(IMG_CONTEXT_TOKEN)
    return model, tokenizer


def parameter_counts(model) -> dict:
    parts = {
        name: sum(p.numel() for p in getattr(model, name).parameters())
        for name in ("vision_model", "mlp1", "language_model")
    }
    parts["total"] = sum(parts.values())
    return parts
