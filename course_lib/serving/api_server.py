"""Start and stop LMDeploy's OpenAI-compatible server from Python (GPU machines with the serving environment).

    with ApiServer(model_path, backend="turbomind", session_len=8192, cache_max_entry_count=0.8, tp=1) as server:
        client = openai_client.make_client(server.base_url)
        ...

runs `lmdeploy serve api_server PATH --backend ... --server-name 127.0.0.1 --server-port PORT --session-len ...
--cache-max-entry-count ... --tp ... --dtype ... --log-level WARNING --chat-template FILE --trust-remote-code`
(dtype: course_lib.precision.choose's for the GPU; FILE: the checkpoint's own chat template,
checkpoints.chat_template_fields) with the serving environment's `lmdeploy`
(next to serving_env.serving_python(): COURSE_SERVING_PYTHON, else .venv-serving/bin/python), on a free
port, in its own process group (server_process.ServerProcess); waits until `/v1/models` answers; keeps the
log in a file under the cache dir; and on exit stops the whole process group (TERM, then KILL) so no worker
is left behind. AWQ weights the engine cannot load are refused before start (lmdeploy_backend.awq_refusal);
`server.engine` is the engine LMDeploy runs, read from its log: asked for TurboMind, it may fall back to PyTorch.
"""

import json
import shutil
import sys
import warnings
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from ..checkpoints import chat_template_fields
from ..config import cuda_available
from ..precision import choose
from .lmdeploy_backend import DTYPES, ENGINES, LMDeployWarning, awq_refusal, check_awq
from .server_process import ServerProcess, ServerStartError, free_port, work_folder
from .serving_env import ServingPythonError, serving_python

# How LMDeploy 0.18 says it will not run TurboMind: both warnings of lmdeploy/archs.py autoget_backend, which
# `lmdeploy serve api_server` calls for any --backend but pytorch (lmdeploy/cli/serve.py SubCliServe.api_server).
FALLBACK = "Fallback to pytorch engine"


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
        return False, "no `lmdeploy` command here (`make serving-env` on a GPU machine)"
    if not has_cuda:
        return False, f"{cli} is there, but torch sees no CUDA GPU (LMDeploy 0.18 serves only on GPUs)"
    return True, f"{cli} and a CUDA GPU are there"


def engine_in_log(asked: str, log: str) -> Tuple[str, str]:
    """(the engine an api_server runs, why) from its log: LMDeploy's fall-back warning (FALLBACK) means PyTorch;
    without it, the engine asked for. Needs the log at level WARNING or lower (api_server_command's default)."""
    if asked not in ENGINES:
        raise ValueError(f"asked must be one of {ENGINES}, got {asked!r}")
    for line in log.splitlines() if asked != "pytorch" else []:
        if FALLBACK in line:
            return "pytorch", line[line.index(FALLBACK) :].strip()
    return asked, f"the {asked} engine was asked for and LMDeploy logged no fall-back"


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
    dtype: Optional[str] = None,
    model_format: Optional[str] = None,
    log_level: str = "WARNING",
) -> List[str]:
    """The command line, flag by flag (nothing runs). chat_template: a ChatTemplateConfig JSON file
    (`--chat-template`); ApiServer writes the checkpoint's own (checkpoints.chat_template_fields). dtype: `--dtype`
    (None leaves LMDeploy's "auto"; ApiServer passes precision.choose's). log_level: WARNING keeps LMDeploy's
    fall-back warning in the log, where ApiServer.engine reads it."""
    if backend not in ENGINES:
        raise ValueError(f"backend must be turbomind or pytorch, got {backend!r}")
    if dtype is not None and dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES} (LMDeploy's --dtype), got {dtype!r}")
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
    if dtype:
        command += ["--dtype", dtype]
    if model_format:
        command += ["--model-format", model_format]
    command += ["--log-level", log_level]
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
        bf16: Optional[bool] = None,
        model_format: Optional[str] = None,
    ):
        """work_dir: where the server's log and chat-template file go (the lessons pass the setup's
        cache/serving); a new temporary folder when not given. bf16: whether the GPU computes in bfloat16 (None
        asks it), for `--dtype`. AWQ weights `backend` cannot load are refused here (CannotServe)."""
        lmdeploy = lmdeploy or lmdeploy_cli()
        if lmdeploy is None:
            raise ServerStartError(api_server_status()[1])
        check_awq(model_path, backend, model_format)
        port = port or free_port(host)
        self.model_path, self.backend, self.model_format = Path(model_path), backend, model_format
        self.model_name = model_name or Path(model_path).name
        self.precision = choose("cuda", bf16)
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
            dtype=self.precision.name,
            model_format=model_format,
        )
        super().__init__(
            command, port, host, "/v1/models", folder / f"api_server-{port}.log", startup_timeout=startup_timeout
        )

    @property
    def engine(self) -> str:
        """The engine LMDeploy runs (or ran), read from the server's log (engine_in_log)."""
        return self.engine_and_why()[0]

    def engine_and_why(self) -> Tuple[str, str]:
        try:
            log = self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            log = ""
        return engine_in_log(self.backend, log)

    def start(self) -> "ApiServer":
        """Start, then say which engine LMDeploy runs: a fall-back is an LMDeployWarning, and one to an engine that
        cannot load the checkpoint's AWQ weights stops the server with the reason (ServerStartError)."""
        super().start()
        engine, why = self.engine_and_why()
        if engine != self.backend:
            warnings.warn(
                f"LMDeploy runs its {engine} engine, not the {self.backend} asked for: {why}", LMDeployWarning
            )
            problem = awq_refusal(self.model_path, engine, self.model_format)
            if problem:
                self.stop()
                raise ServerStartError(f"LMDeploy fell back to its {engine} engine, which cannot serve: {problem}")
        return self

    def models(self) -> List[str]:
        return [model["id"] for model in self.get_json("/v1/models")["data"]]
