"""Start and stop LMDeploy's OpenAI-compatible server from Python (GPU machines with the serving environment).

    with ApiServer(model_path, backend="turbomind", session_len=8192, cache_max_entry_count=0.8, tp=1) as server:
        client = openai_client.make_client(server.base_url)
        ...

runs `lmdeploy serve api_server PATH --backend ... --server-name 127.0.0.1 --server-port PORT --session-len ...
--cache-max-entry-count ... --tp ... --chat-template FILE --trust-remote-code` (FILE: the checkpoint's own chat
template, checkpoints.chat_template_fields) with the serving environment's `lmdeploy`
(next to serving_env.serving_python(): COURSE_SERVING_PYTHON, else .venv-serving/bin/python), on a free
port, in its own process group (server_process.ServerProcess); waits until `/v1/models` answers; keeps the
log in a file under the cache dir; and on exit stops the whole process group (TERM, then KILL) so no worker
is left behind.
"""

import json
import shutil
import sys
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from ..checkpoints import chat_template_fields
from ..config import cuda_available
from .server_process import ServerProcess, ServerStartError, free_port, work_folder
from .serving_env import ServingPythonError, serving_python


def lmdeploy_cli() -> Optional[Path]:
    """The `lmdeploy` command: the serving environment's, else this Python's, else one on PATH.
    ServingPythonError when COURSE_SERVING_PYTHON names no file (serving_env.serving_python)."""
    python = serving_python()
    candidates = [python.parent / "lmdeploy"] if python else []
    candidates.append(Path(sys.prefix) / "bin" / "lmdeploy")
    found = shutil.which("lmdeploy")
    candidates += [Path(found)] if found else []
    return next((path for path in candidates if path.is_file()), None)


def api_server_status(has_cuda: Optional[bool] = None) -> Tuple[bool, str]:
    """(can `lmdeploy serve api_server` run here?, the reason in one sentence)."""
    try:
        cli = lmdeploy_cli()
    except ServingPythonError as error:
        return False, str(error)
    has_cuda = cuda_available() if has_cuda is None else has_cuda
    if cli is None:
        return False, (
            "no `lmdeploy` command: the serving environment .venv-serving is not built (`make serving-env` "
            "on a GPU machine) and LMDeploy is not installed here"
        )
    if not has_cuda:
        return False, f"{cli} is there, but torch sees no CUDA GPU and LMDeploy 0.18 serves only on GPUs"
    return True, f"{cli} and a CUDA GPU are there"


def api_server_command(
    model_path,
    port: int,
    backend: str = "turbomind",
    host: str = "127.0.0.1",
    session_len: int = 8192,
    cache_max_entry_count: float = 0.8,
    tp: int = 1,
    quant_policy: int = 0,
    model_name: Optional[str] = None,
    lmdeploy="lmdeploy",
    chat_template=None,
    extra: Sequence[str] = (),
) -> List[str]:
    """The command line, flag by flag (nothing runs). chat_template: a ChatTemplateConfig JSON file
    (`--chat-template`); ApiServer writes the checkpoint's own (checkpoints.chat_template_fields)."""
    if backend not in ("turbomind", "pytorch"):
        raise ValueError(f"backend must be turbomind or pytorch, got {backend!r}")
    if not 0 < cache_max_entry_count <= 1:
        raise ValueError(f"cache_max_entry_count is a share of free GPU memory, in (0, 1]; got {cache_max_entry_count}")
    if quant_policy not in (0, 4, 8):
        raise ValueError(f"quant_policy is 0 (fp16/bf16 KV), 8 (int8) or 4 (int4); got {quant_policy}")
    command = [
        str(lmdeploy),
        "serve",
        "api_server",
        str(model_path),
        "--backend",
        backend,
        "--server-name",
        host,
        "--server-port",
        str(port),
        "--session-len",
        str(session_len),
        "--cache-max-entry-count",
        str(cache_max_entry_count),
        "--tp",
        str(tp),
    ]
    if quant_policy:
        command += ["--quant-policy", str(quant_policy)]
    if model_name:
        command += ["--model-name", model_name]
    if chat_template:
        command += ["--chat-template", str(chat_template)]
    return command + ["--trust-remote-code", *extra]


class ApiServer(ServerProcess):
    """`lmdeploy serve api_server` for a checkpoint, on 127.0.0.1 and a free port."""

    def __init__(
        self,
        model_path,
        backend: str = "turbomind",
        port: Optional[int] = None,
        host: str = "127.0.0.1",
        session_len: int = 8192,
        cache_max_entry_count: float = 0.8,
        tp: int = 1,
        quant_policy: int = 0,
        model_name: Optional[str] = None,
        lmdeploy=None,
        extra: Sequence[str] = (),
        startup_timeout: float = 900,
        work_dir=None,
    ):
        """work_dir: where the server's log and chat-template file go (the lessons pass the setup's
        cache/serving); a new temporary folder when not given."""
        lmdeploy = lmdeploy or lmdeploy_cli()
        if lmdeploy is None:
            raise ServerStartError(api_server_status()[1])
        port = port or free_port(host)
        self.model_name = model_name or Path(model_path).name
        folder = work_folder(work_dir)
        self.chat_template = folder / f"chat-template-{port}.json"  # the checkpoint's own layout (see its docstring)
        folder.mkdir(parents=True, exist_ok=True)
        self.chat_template.write_text(
            json.dumps(chat_template_fields(model_path), ensure_ascii=False, indent=2), encoding="utf-8"
        )
        command = api_server_command(
            model_path,
            port,
            backend,
            host,
            session_len,
            cache_max_entry_count,
            tp,
            quant_policy,
            self.model_name,
            lmdeploy,
            self.chat_template,
            extra,
        )
        super().__init__(
            command, port, host, "/v1/models", folder / f"api_server-{port}.log", startup_timeout=startup_timeout
        )

    def models(self) -> List[str]:
        return [model["id"] for model in self.get_json("/v1/models")["data"]]
