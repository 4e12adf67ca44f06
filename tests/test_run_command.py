"""The README's run command: `make course` serves JupyterLab on 127.0.0.1 and runs code in the course kernel."""

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
import uuid

import psutil
import pytest
from conftest import REPO_ROOT

TOKEN = "course-kit-test-token"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _api(port, path, method="GET", body=None):
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"token {TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"null")


def _execute(port, kernel_id, code):
    """Run code in the kernel through the server's websocket; returns what it printed."""
    import websocket

    ws = websocket.create_connection(
        f"ws://127.0.0.1:{port}/api/kernels/{kernel_id}/channels", header=[f"Authorization: token {TOKEN}"], timeout=60
    )
    msg_id = uuid.uuid4().hex
    ws.send(
        json.dumps(
            {
                "header": {
                    "msg_id": msg_id,
                    "msg_type": "execute_request",
                    "username": "test",
                    "session": uuid.uuid4().hex,
                    "version": "5.3",
                },
                "parent_header": {},
                "metadata": {},
                "channel": "shell",
                "content": {
                    "code": code,
                    "silent": False,
                    "store_history": False,
                    "user_expressions": {},
                    "allow_stdin": False,
                },
            }
        )
    )
    printed, deadline = [], time.time() + 120
    try:
        while time.time() < deadline:
            message = json.loads(ws.recv())
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if message["msg_type"] == "stream":
                printed.append(message["content"]["text"])
            elif message["msg_type"] == "error":
                raise AssertionError("\n".join(message["content"]["traceback"]))
            elif message["msg_type"] == "status" and message["content"]["execution_state"] == "idle":
                return "".join(printed)
    finally:
        ws.close()
    raise AssertionError("the kernel did not finish in time")


@pytest.mark.timeout(600)
def test_make_course_serves_jupyterlab_with_the_course_kernel():
    port = _free_port()
    env = dict(os.environ, JUPYTER_TOKEN=TOKEN, COURSE_MODE="tiny")
    server = subprocess.Popen(
        ["make", "course", f"PORT={port}"],
        cwd=REPO_ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.time() + 300
        while True:
            try:
                specs = _api(port, "/api/kernelspecs")
                break
            except OSError:
                if server.poll() is not None or time.time() > deadline:
                    raise AssertionError(
                        "JupyterLab did not start:\n" + (server.stdout.read() if server.poll() is not None else "")
                    )
                time.sleep(1)
        assert specs["default"] == "course-kit" and "course-kit" in specs["kernelspecs"]
        listening = {
            c.laddr.ip
            for c in psutil.net_connections("inet")
            if c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN
        }
        assert listening == {"127.0.0.1"}, listening  # loopback only
        kernel = _api(port, "/api/kernels", "POST", {"name": "course-kit"})
        printed = _execute(
            port, kernel["id"], "import sys, course_lib\nsetup = course_lib.resolve()\nprint(sys.prefix, setup.mode)"
        )
        assert printed.split() == [str(REPO_ROOT / ".venv"), "tiny"]
        _api(port, f"/api/kernels/{kernel['id']}", "DELETE")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
