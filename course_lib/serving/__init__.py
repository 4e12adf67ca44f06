"""Serving InternVL2: one engine API (LMDeploy on GPUs, transformers anywhere), the api_server, the Gradio demo.

engine.py               Engine, GenerationSettings, Session, Turn: what every backend builds on (imports none)
transformers_backend.py InternVL2's remote-code chat/batch_chat, streaming with TextIteratorStreamer
lmdeploy_backend.py     lmdeploy.pipeline (imported lazily; GPU only) and LMDeploy's prompt rendering
backends.py             choose_backend, make_engine: which backend serves, and why
serving_env.py          which Python runs LMDeploy (this one, COURSE_SERVING_PYTHON, or .venv-serving)
server_process.py       a server in its own process group on a free port (start, readiness, logs, stop)
api_server.py           start/stop `lmdeploy serve api_server` (its command, the checkpoint's chat template)
openai_client.py        OpenAI-style requests: base64 images, per-image max_dynamic_patch, streaming
kv_cache.py             cache_max_entry_count and --quant-policy: how many tokens and sessions fit
gradio_app.py           the food demo (python -m course_lib.serving.gradio_app)
"""

from .backends import BACKENDS, choose_backend, lmdeploy_status, make_engine
from .engine import ContextTooLong, Engine, GenerationSettings, Response, Session

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
