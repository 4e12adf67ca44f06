"""Serving InternVL2: one engine API (LMDeploy on GPUs, transformers anywhere), the api_server, the Gradio demo.

engine.py               Engine, GenerationSettings, Session, make_engine (which backend, and why)
transformers_backend.py InternVL2's remote-code chat/batch_chat, streaming with TextIteratorStreamer
lmdeploy_backend.py     lmdeploy.pipeline (imported lazily; GPU only) and LMDeploy's prompt rendering
api_server.py           start/stop `lmdeploy serve api_server` (process group, logs, readiness)
openai_client.py        OpenAI-style requests: base64 images, per-image max_dynamic_patch, streaming
kv_cache.py             cache_max_entry_count and --quant-policy: how many tokens and sessions fit
gradio_app.py           the food demo (python -m course_lib.serving.gradio_app)
"""

from .engine import (
    BACKENDS,
    ContextTooLong,
    Engine,
    GenerationSettings,
    Response,
    Session,
    choose_backend,
    lmdeploy_status,
    make_engine,
)

__all__ = [
    "BACKENDS",
    "ContextTooLong",
    "Engine",
    "GenerationSettings",
    "Response",
    "Session",
    "choose_backend",
    "lmdeploy_status",
    "make_engine",
]
