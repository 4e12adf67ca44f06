"""Start and stop LMDeploy's OpenAI-compatible server from Python (GPU machines with the serving environment).

    with ApiServer(model_path, backend="turbomind", session_len=8192, cache_max_entry_count=0.8, tp=1) as server:
        client = openai_client.make_client(server.base_url)
        ...

runs `lmdeploy serve api_server PATH --backend ... --server-name 127.0.0.1 --server-port PORT --session-len ...
--cache-max-entry-count ... --tp ... --chat-template FILE --trust-remote-code` (FILE: the checkpoint's own chat
template, checkpoints.chat_template_fields) with the serving environment's `lmdeploy`
(.venv-serving/bin/lmdeploy when present), on a free port, in its own process group; waits until
`/v1/models` answers; keeps the log in a file under the cache dir; and on exit stops the whole process
group (TERM, then KILL) so no worker is left behind.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import psutil

from ..checkpoints import chat_template_fields
from ..config import REPO_ROOT, cuda_available

SERVING_ENV = REPO_ROOT / ".venv-serving"


class ServerStartError(RuntimeError):
    """The server exited or did not answer in time; the message ends with the last lines of its log."""


def serving_python() -> Optional[Path]:
    """The Python of the serving environment (COURSE_SERVING_PYTHON, else .venv-serving), if there is one."""
    explicit = os.environ.get("COURSE_SERVING_PYTHON")
    candidates = [Path(explicit)] if explicit else [SERVING_ENV / "bin" / "python"]
    return next((path for path in candidates if path.is_file()), None)


def lmdeploy_cli() -> Optional[Path]:
    """The `lmdeploy` command: the serving environment's, else this Python's, else one on PATH."""
    python = serving_python()
    candidates = [python.parent / "lmdeploy"] if python else []
    candidates.append(Path(sys.prefix) / "bin" / "lmdeploy")
    found = shutil.which("lmdeploy")
    candidates += [Path(found)] if found else []
    return next((path for path in candidates if path.is_file()), None)


def api_server_status(has_cuda: Optional[bool] = None) -> Tuple[bool, str]:
    """(can `lmdeploy serve api_server` run here?, the reason in one sentence)."""
    cli = lmdeploy_cli()
    has_cuda = cuda_available() if has_cuda is None else has_cuda
    if cli is None:
        return False, (
            "no `lmdeploy` command: the serving environment .venv-serving is not built (`make serving-env` "
            "on a GPU machine) and LMDeploy is not installed here"
        )
    if not has_cuda:
        return False, f"{cli} is there, but torch sees no CUDA GPU and LMDeploy 0.18 serves only on GPUs"
    return True, f"{cli} and a CUDA GPU are there"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


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


def _work_folder(folder) -> Path:
    """The folder given (created), or a new temporary one."""
    if folder is None:
        return Path(tempfile.mkdtemp(prefix="course-serving-"))
    Path(folder).mkdir(parents=True, exist_ok=True)
    return Path(folder)


class ServerProcess:
    """A server command in its own process group: started, polled until `ready_path` answers, stopped whole."""

    def __init__(
        self,
        command: Sequence[str],
        port: int,
        host: str = "127.0.0.1",
        ready_path: str = "/v1/models",
        log_path=None,
        env: Optional[dict] = None,
        startup_timeout: float = 900,
    ):
        self.command = [str(part) for part in command]
        self.host, self.port, self.ready_path = host, port, ready_path
        # a log is kept where the caller says (the lessons: the setup's cache), else in a folder of its own
        self.log_path = Path(log_path) if log_path else _work_folder(None) / f"server-{port}.log"
        self.env = env
        self.startup_timeout = startup_timeout
        self.process: Optional[subprocess.Popen] = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def get_json(self, path: str, timeout: float = 5):
        with urllib.request.urlopen(self.base_url + path, timeout=timeout) as response:
            return json.loads(response.read())

    def answers(self) -> bool:
        """Does `ready_path` answer with HTTP 200?"""
        try:
            with urllib.request.urlopen(self.base_url + self.ready_path, timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, ConnectionError, OSError):
            return False

    def start(self) -> "ServerProcess":
        if self.process is not None:
            raise RuntimeError("the server is already started")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "w", encoding="utf-8") as log:
            log.write("$ " + " ".join(self.command) + "\n")
            log.flush()
            self.process = subprocess.Popen(
                self.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=self.env,
            )
        deadline = time.monotonic() + self.startup_timeout
        while True:
            code = self.process.poll()
            if code is not None:
                self.stop()
                raise ServerStartError(
                    f"the server exited with code {code} before answering; log {self.log_path}:\n" + self.log_tail()
                )
            if self.answers():
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise ServerStartError(
                    f"no answer from {self.base_url}{self.ready_path} after {self.startup_timeout:.0f} s; "
                    f"log {self.log_path}:\n" + self.log_tail()
                )
            time.sleep(0.5)

    def group_processes(self) -> List[psutil.Process]:
        """Every live process of the server's process group (the server and the workers it started)."""
        if self.process is None:
            return []
        found = []
        for proc in psutil.process_iter(["pid"]):
            try:
                if os.getpgid(proc.pid) == self.process.pid and proc.status() != psutil.STATUS_ZOMBIE:
                    found.append(proc)
            except (ProcessLookupError, psutil.Error, OSError):
                continue
        return found

    def _group_gone(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            self.process.poll()  # reap the server itself once it exits
            if not self.group_processes():
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)

    def stop(self, timeout: float = 30) -> None:
        """TERM the whole process group, KILL what is left after `timeout` seconds, and reap the server."""
        if self.process is None:
            return
        try:  # children that moved to another group (setsid) still belong to this server
            escaped = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            escaped = []
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                pass
            if self._group_gone(wait):
                break
        for child in escaped:
            try:
                child.kill()
            except psutil.Error:
                pass
        self.process.wait(timeout=10)
        self.process = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def __enter__(self):
        return self.start() if self.process is None else self

    def __exit__(self, *exc):
        self.stop()


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
        folder = _work_folder(work_dir)
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
