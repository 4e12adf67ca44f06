"""Execute the course notebooks headlessly: what the tests and a teacher's dry run before class use."""

import os
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from queue import Empty
from typing import Iterable, List, Optional, Tuple

import nbformat
import zmq
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.channels import AsyncZMQSocketChannel
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from traitlets.config import Config

from .lessons import NOTEBOOK_DIR, edition_dir
from .serving.lmdeploy_backend import LMDeployWarning

COURSE_KERNEL = "course-kit"
# The runner gives the kernel CurveZMQ keys where its kernelspec says it takes them (ipykernel 7 writes
# "supported_encryption": ["curve"] there): over TCP without them, ipykernel warns on its stderr at every start
# that the traffic is unencrypted (ipykernel/kernelapp.py init_sockets; jupyter_client's transport_encryption).
KERNEL_CONFIG = Config(
    {
        "KernelManager": {"transport_encryption": "auto" if zmq.has("curve") else "disabled"},
        "AsyncKernelManager": {"client_class": "course_lib.notebooks.SlicedPollClient"},
    }
)
# Why lesson 03 once waited 600 s after its widget cell (issue 27): nbclient plays JupyterLab's part for an Output
# widget by sending comm messages to the kernel on the shell socket, from the coroutine that reads IOPub, while
# another coroutine polls that same socket for the cell's reply (nbclient#312). When the two meet, the socket's
# edge-triggered wake-up can be lost: the reply then sits unread until the poll's own timeout, the cell timeout,
# and is taken as if nothing happened. The runner (1) does not play the Output widget's part (the widget's figure
# stays the cell's own output, which is what a static copy can show anyway), (2) reads the channels in one-second
# polls, so a lost wake-up costs at most a second, and (3) fails a cell whose reply still reaches it late.
POLL_SLICE_S = 1.0
LATE_REPLY_S = 60.0
KIT_DIR = Path(__file__).resolve().parent
KIT_WARNINGS = {LMDeployWarning.__name__}  # the warning categories course_lib defines
# How warnings.formatwarning starts a warning: "FILE:LINE: CATEGORY: message", then the line of source, indented.
WARNING = re.compile(r"^(?P<file>\S[^\n]*?):(?P<line>\d+): (?P<category>\w*Warning): ", re.MULTILINE)


class SlicedPollChannel(AsyncZMQSocketChannel):
    """A kernel channel that waits for a message in one-second polls rather than one long one."""

    async def get_msg(self, timeout: Optional[float] = None) -> dict:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            wait = POLL_SLICE_S if left is None else max(0.0, min(POLL_SLICE_S, left))
            if await self.socket.poll(int(wait * 1000)):
                return await self._recv()
            if left is not None and left <= POLL_SLICE_S:
                raise Empty


class SlicedPollClient(AsyncKernelClient):
    """The kernel client the runner uses: its shell and IOPub channels are SlicedPollChannels."""

    shell_channel_class = SlicedPollChannel
    iopub_channel_class = SlicedPollChannel


class StalledCell(RuntimeError):
    """A cell's reply reached the runner long after the kernel sent it."""


def refuse_late_reply(cell, cell_index: int, execute_reply: dict, limit_s: float = LATE_REPLY_S) -> None:
    """nbclient's on_cell_executed hook: raise StalledCell, naming the cell, when its reply is late."""
    sent = execute_reply.get("header", {}).get("date")
    if not isinstance(sent, datetime):  # a kernel that does not stamp its replies: nothing to compare
        return
    late = (datetime.now(timezone.utc) - sent.astimezone(timezone.utc)).total_seconds()
    if late > limit_s:
        first_line = cell.source.strip().splitlines()[0] if cell.source.strip() else ""
        raise StalledCell(
            f"cell {cell_index} (id {cell.get('id', '?')}, `{first_line}`): the kernel finished it, but its reply "
            f"reached the runner {late:.0f} s later. The runner's message loop stalled; run it again, and if it "
            "happens again report it with this message (course_lib/notebooks.py explains the known cause)."
        )


@dataclass
class NotebookRun:
    path: Path
    seconds: float
    error: Optional[str] = None

    @property
    def ok(self) -> bool:
        return self.error is None


def kernel_for(notebook) -> str:
    """The notebook's own kernel if it is installed, else the kernel of this Python."""
    name = notebook.metadata.get("kernelspec", {}).get("name", COURSE_KERNEL)
    try:
        KernelSpecManager().get_kernel_spec(name)
        return name
    except NoSuchKernel:
        return "python3"


def with_solutions(notebook, lesson: str):
    """The notebook with the model answers (course_lib.solutions) between its exercise markers."""
    from .exercises import END, marked_exercises
    from .solutions import SOLUTIONS

    filled = set()
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        for name, begin in marked_exercises(cell.source, lesson):
            before, rest = cell.source.split(begin, 1)
            if END not in rest:
                raise ValueError(f"lesson {lesson}: exercise {name}'s cell has {begin!r} but no {END!r}")
            if name not in SOLUTIONS:
                raise KeyError(f"exercise {name} (lesson {lesson}) has no solution in course_lib/solutions.py")
            cell.source = before + begin + "\n" + SOLUTIONS[name] + END + rest.split(END, 1)[1]
            filled.add(name)
    unused = sorted(name for name in SOLUTIONS if name[:2] == lesson and name not in filled)
    if unused:
        raise ValueError(
            f"course_lib/solutions.py has solutions for {unused}, which lesson {lesson}'s notebook does not ask"
        )
    return notebook


def execute_notebook(
    path: Path,
    timeout: int = 600,
    env: Optional[dict] = None,
    kernel_name: Optional[str] = None,
    solutions: bool = False,
):
    """Run every cell of a notebook in a fresh kernel (cwd = the notebook's folder); returns (notebook, run).
    solutions=True fills in the exercises' model answers and makes a check that does not pass fail the run
    (how CI and a teacher's dry run execute the lessons); without, the notebook runs as a student sees it."""
    from .exercises import STRICT_ENV

    path = Path(path)
    notebook = nbformat.read(path, as_version=4)
    if solutions:
        notebook = with_solutions(notebook, path.name[:2])
        env = {**(env or {}), STRICT_ENV: "1"}
    client = NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name=kernel_name or kernel_for(notebook),
        resources={"metadata": {"path": str(path.parent)}},
        config=KERNEL_CONFIG,
        on_cell_executed=refuse_late_reply,
    )
    # No stand-in for JupyterLab's Output widget (see KERNEL_CONFIG): a handler that keeps no object.
    client.comm_open_handlers["jupyter.widget"] = lambda msg: None
    started = time.perf_counter()
    try:
        client.execute(env={**os.environ, **(env or {})})  # the kernel's environment; ours is left alone
        error = None
    except (CellExecutionError, StalledCell) as failure:  # the message names the cell (and its traceback)
        error = str(failure)
    return notebook, NotebookRun(path, time.perf_counter() - started, error)


def build_notebooks(
    out_dir: Path,
    notebooks: Optional[Iterable[Path]] = None,
    html: bool = True,
    timeout: int = 600,
    solutions: bool = True,
    lang: str = "en",
) -> List[NotebookRun]:
    """Execute notebooks (by default every lesson of the edition `lang`: notebooks, or notebooks/zh for "zh"),
    writing executed copies (and HTML) to out_dir; failures are kept, not raised. By default with the exercises'
    solutions filled in: a teacher's dry run proves every check passes."""
    from nbconvert import HTMLExporter

    out_dir = Path(out_dir)
    edition = edition_dir(lang)
    sources = list(notebooks or sorted(edition.glob("[0-9][0-9]_*.ipynb")))
    clashes = sorted({str(path) for path in sources if (out_dir / Path(path).name).resolve() == Path(path).resolve()})
    if out_dir.resolve() == NOTEBOOK_DIR.resolve() or clashes:
        raise ValueError(
            f"{out_dir} is where the lesson notebooks live ({', '.join(clashes) or NOTEBOOK_DIR}): executed "
            "copies would overwrite them; write them elsewhere, e.g. --out build/notebooks"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = []
    for path in sources:
        notebook, run = execute_notebook(path, timeout=timeout, solutions=solutions, env={"COURSE_LANG": lang})
        notebook.metadata["course_run"] = {"ok": run.ok, "seconds": round(run.seconds, 1)}  # make site skips a failure
        nbformat.write(notebook, out_dir / path.name)
        if html:
            body, _ = HTMLExporter().from_notebook_node(notebook)
            (out_dir / path.with_suffix(".html").name).write_text(body, encoding="utf-8")
        status = "ok" if run.ok else "FAILED"
        print(f"{path.name}: {status} in {run.seconds:.1f} s", flush=True)
        runs.append(run)
    return runs


def foreign_output(executed) -> List[Tuple[str, str]]:
    """(cell id, text) of everything an executed notebook printed that is not the lesson's or the kit's own: any
    text on stderr, and any Python warning in its outputs (stderr or stdout), unless the kit raised it: its
    category is one of course_lib's (KIT_WARNINGS), or a `warnings.warn` call in course_lib raised it. A library's
    warning that a stacklevel attributes to a kit line is foreign: the line shown is then the call into it."""
    found = []
    for cell in executed.cells:
        streams = [output for output in cell.get("outputs", []) if output.output_type == "stream"]
        for output in streams:  # tqdm.auto's bars are not among them: in a kernel they are widgets (display_data)
            for piece in _pieces(output.text):
                warning = WARNING.match(piece)
                foreign = not _kits_own(warning, piece) if warning else output.name == "stderr"
                if foreign:
                    found.append((cell.get("id", "?"), piece.strip()))
    return found


def _pieces(text: str) -> List[str]:
    """A stream's text cut before each warning: the text before the first one, then one piece per warning."""
    cuts = [0] + [match.start() for match in WARNING.finditer(text)] + [len(text)]
    return [text[start:end] for start, end in zip(cuts, cuts[1:]) if text[start:end].strip()]


def _kits_own(warning: re.Match, piece: str) -> bool:
    if warning["category"] in KIT_WARNINGS:
        return True
    in_kit = Path(warning["file"]).resolve().is_relative_to(KIT_DIR)
    return in_kit and any(line.strip().startswith("warnings.warn(") for line in piece.splitlines()[1:])
