"""Execute the course notebooks headlessly: what the tests and a teacher's dry run before class use."""

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, List, Optional

import nbformat
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from .lessons import NOTEBOOK_DIR

COURSE_KERNEL = "course-kit"


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
    )
    started = time.perf_counter()
    try:
        client.execute(env={**os.environ, **(env or {})})  # the kernel's environment; ours is left alone
        error = None
    except CellExecutionError as failure:  # its message holds the failing cell's source and traceback
        error = str(failure)
    return notebook, NotebookRun(path, time.perf_counter() - started, error)


def build_notebooks(
    out_dir: Path,
    notebooks: Optional[Iterable[Path]] = None,
    html: bool = True,
    timeout: int = 600,
    solutions: bool = True,
) -> List[NotebookRun]:
    """Execute notebooks, writing executed copies (and HTML) to out_dir; failures are kept, not raised.
    By default with the exercises' solutions filled in: a teacher's dry run proves every check passes."""
    from nbconvert import HTMLExporter

    out_dir = Path(out_dir)
    sources = list(notebooks or sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb")))
    clashes = sorted({str(path) for path in sources if (out_dir / Path(path).name).resolve() == Path(path).resolve()})
    if out_dir.resolve() == NOTEBOOK_DIR.resolve() or clashes:
        raise ValueError(
            f"{out_dir} is where the lesson notebooks live ({', '.join(clashes) or NOTEBOOK_DIR}): executed "
            "copies would overwrite them; write them elsewhere, e.g. --out build/notebooks"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = []
    for path in sources:
        notebook, run = execute_notebook(path, timeout=timeout, solutions=solutions)
        nbformat.write(notebook, out_dir / path.name)
        if html:
            body, _ = HTMLExporter().from_notebook_node(notebook)
            (out_dir / path.with_suffix(".html").name).write_text(body, encoding="utf-8")
        status = "ok" if run.ok else "FAILED"
        print(f"{path.name}: {status} in {run.seconds:.1f} s", flush=True)
        runs.append(run)
    return runs
