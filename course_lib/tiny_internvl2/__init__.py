"""The tiny InternVL2-shaped model the kit builds for CPU-only, offline lessons."""

from .build import SPEC, TINY_CHECKPOINT, checkpoint_dir, ensure_tiny_checkpoint, is_complete, source_hash

__all__ = ["SPEC", "TINY_CHECKPOINT", "checkpoint_dir", "ensure_tiny_checkpoint", "is_complete", "source_hash"]
