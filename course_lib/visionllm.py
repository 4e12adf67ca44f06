"""VisionLLM v2's multi-task output ("super link"), the way InternVL2 answers with boxes, masks or pictures.

The language model is taught routing tokens, one per task ([DET], [SEG], [POSE], [GEN]). When it writes one,
that task's learnt query embeddings are appended after it, the language model encodes them in context (causal
attention: they see the whole conversation), and their hidden states go to that task's decoder: a detector,
a segmenter, a pose head or a diffusion model. Text tasks never pass through a decoder.

`super_link` runs that step for real on any causal LM (the course model's InternLM2): the task queries are fresh
embeddings here (VisionLLM v2 trains them with the decoders), so the point is the plumbing and the shapes,
not the boxes.
"""

from typing import Dict

import torch
from torch import nn

# VisionLLM v2 (Wu et al. 2024, arXiv:2406.08394): routing tokens and the decoder each one feeds.
ROUTES = {
    "[DET]": "detection (boxes)",
    "[SEG]": "segmentation (masks)",
    "[POSE]": "pose (keypoints)",
    "[GEN]": "image generation (a diffusion model)",
}


class TaskQueries(nn.Module):
    """Learnt query embeddings per routing token, as many as its decoder reads."""

    def __init__(self, hidden_size: int, queries_per_route: Dict[str, int], seed: int = 0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.queries = nn.ParameterDict(
            {
                route.strip("[]"): nn.Parameter(torch.randn(count, hidden_size, generator=generator) * 0.02)
                for route, count in queries_per_route.items()
            }
        )

    def __getitem__(self, route: str) -> torch.Tensor:
        return self.queries[route.strip("[]")]


@torch.no_grad()
def super_link(language_model, tokenizer, text: str, route: str, task_queries: TaskQueries) -> torch.Tensor:
    """The decoder's input for `route` after the model wrote `text` (which ends with the routing token): the
    hidden states of the task's queries, appended after the text and encoded in its context.
    Returns (queries, hidden_size)."""
    if route not in ROUTES:
        raise ValueError(f"unknown routing token {route!r}; known: {sorted(ROUTES)}")
    if not text.rstrip().endswith(route):
        raise ValueError(
            f"the text must end with the routing token {route} (the model writes it, then the queries follow)"
        )
    embed = language_model.get_input_embeddings()
    ids = tokenizer(text, return_tensors="pt").input_ids.to(embed.weight.device)
    queries = task_queries[route].to(embed.weight.device, embed.weight.dtype)
    inputs = torch.cat([embed(ids), queries.unsqueeze(0)], dim=1)
    hidden = language_model(inputs_embeds=inputs, output_hidden_states=True).hidden_states[-1]
    return hidden[0, -queries.shape[0] :]
