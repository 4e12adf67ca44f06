"""A server command in its own process group, on a free port: started, polled until it answers, stopped whole.

    port = free_port()
    with ServerProcess([sys.executable, "-m", "http.server", str(port)], port, ready_path="/") as server:
        server.answers()  # True: GET / answered with HTTP 200

`start` waits until `ready_path` answers with HTTP 200 (or raises ServerStartError with the end of the log);
`stop` TERMs the whole process group, then KILLs what is left, so no worker is left behind. LMDeploy's
api_server (api_server.ApiServer) and the Gradio demo's tests run their servers this way.
"""

import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import List, Optional, Sequence

import psutil


class ServerStartError(RuntimeError):
    """The server exited or did not answer in time; the message ends with the last lines of its log."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on at `host` now (the system picks it)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def work_folder(folder) -> Path:
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
        self.log_path = Path(log_path) if log_path else work_folder(None) / f"server-{port}.log"
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
