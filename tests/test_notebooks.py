"""Every notebook is committed without outputs and executes in tiny mode in a fresh kernel (d2l style)."""

import json

import pytest
from conftest import REPO_ROOT

from course_lib.lessons import LESSONS
from course_lib.notebooks import execute_notebook, foreign_output

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))
ZH_NOTEBOOKS = sorted((REPO_ROOT / "notebooks" / "zh").glob("*.ipynb"))  # the Chinese edition (course_lib.translation)
EXECUTED = REPO_ROOT / "build" / "notebooks"  # as make notebooks writes them (with the exercises' solutions)


def test_every_notebook_is_a_listed_lesson():
    assert NOTEBOOKS, "no notebooks found"
    assert sorted(p.name for p in NOTEBOOKS) == sorted(lesson.notebook for lesson in LESSONS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(path):
    notebook = json.loads(path.read_text(encoding="utf-8"))
    dirty = [
        i
        for i, cell in enumerate(notebook["cells"])
        if cell["cell_type"] == "code" and (cell.get("outputs") or cell.get("execution_count") is not None)
    ]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs; clear them before committing"
    assert notebook["metadata"]["kernelspec"]["name"] == "course-kit"


@pytest.mark.timeout(1200)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_executes_in_tiny_mode(path):
    """With the exercises' solutions filled in and strict checks: every solution passes its check; the lesson
    opens with its one-line header and prints nothing that is not its own (assert_only_own_output)."""
    executed, run = execute_notebook(path, timeout=600, env={"COURSE_MODE": "tiny"}, solutions=True)
    assert run.ok, f"{path.name} failed after {run.seconds:.0f} s:\n{run.error}"
    keep_executed(executed, EXECUTED / path.name)
    assert_header(executed, path, "TINY mode on ")
    assert_only_own_output(executed, path)


def keep_executed(executed, target):
    """The executed copy, where `make notebooks` writes it: the site test (and make site) builds from it."""
    import nbformat

    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(executed, target)


def assert_header(executed, path, mode_and_device, lesson="Lesson {number} · "):
    """begin()'s first line says the lesson, mode and device, and where the details are (setup.explain())."""
    first_output = "".join(out.get("text", "") for out in executed.cells[1].outputs)
    header = first_output.splitlines()[0] if first_output else ""
    assert header.startswith(lesson.format(number=path.name[:2]) + mode_and_device), first_output[:300]
    assert "setup.explain()" in header, header


def check_outputs(executed):
    """What the lesson's exercise checks printed, cell by cell."""
    return [
        "".join(out.get("text", "") for out in cell.outputs)
        for cell in executed.cells
        if cell.cell_type == "code" and "check(" in cell.source
    ]


@pytest.mark.timeout(1200)
@pytest.mark.parametrize("path", ZH_NOTEBOOKS, ids=lambda p: "zh-" + p.name)
def test_chinese_lesson_executes_and_speaks_chinese(path):
    """The Chinese edition runs as the English one does (solutions filled in, strict checks); the kernel starts in
    notebooks/zh, so begin() speaks Chinese without being told, and so do the exercise verdicts."""
    executed, run = execute_notebook(path, timeout=600, env={"COURSE_MODE": "tiny"}, solutions=True)
    assert run.ok, f"zh/{path.name} failed after {run.seconds:.0f} s:\n{run.error}"
    keep_executed(executed, EXECUTED / "zh" / path.name)
    assert_header(executed, path, "TINY 模式，运行在 ", lesson="第 {number} 课 · ")
    assert_only_own_output(executed, path)
    verdicts = check_outputs(executed)
    assert all(verdict.startswith("答对了：") for verdict in verdicts), verdicts
    assert bool(verdicts) == (path.name[:2] != "00"), path.name


def assert_only_own_output(executed, path):
    """No stderr text and no warning in a lesson's outputs but the kit's own (course_lib.notebooks.foreign_output):
    a warning counts as the kit's when its category is one of course_lib's (KIT_WARNINGS: LMDeployWarning) or a
    `warnings.warn` in course_lib raised it. Everything else (a library's notice, log line or warning, also one a
    stacklevel pins on a kit line) is foreign: silence it where the kit imports or calls that library (precisely
    that message), or let the lesson say it in its own words."""
    foreign = foreign_output(executed)
    shown = "\n".join(f"  cell {cell}: {text[:500]}" for cell, text in foreign)
    assert not foreign, f"{path.name} printed what is not the lesson's or the kit's own:\n{shown}"


def test_execute_notebook_passes_env_to_the_kernel_only(tmp_path):
    import os

    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    path = tmp_path / "probe.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell("import os; print(os.environ['COURSE_PROBE'])")]), path)
    executed, run = execute_notebook(path, timeout=120, env={"COURSE_PROBE": "from-the-caller"}, kernel_name="python3")
    assert run.ok, run.error
    assert executed.cells[0].outputs[0]["text"].strip() == "from-the-caller"
    assert "COURSE_PROBE" not in os.environ


def test_a_widget_cell_does_not_stall_the_next_one_and_keeps_its_figure(tmp_path):
    """Lesson 03's stall (issue 27): the runner no longer answers for the Output widget on the shell socket, so the
    widget's figure is the cell's own output, and every next cell starts within seconds of the widget cell's reply."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    widget_cell = (
        "import ipywidgets as widgets\nimport matplotlib.pyplot as plt\n\n"
        "def draw(n=3):\n    plt.plot(range(n))\n    plt.show()\n\n"
        "widgets.interactive(draw, n=widgets.IntSlider(value=3, min=1, max=9))"
    )
    path = tmp_path / "widget.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell(widget_cell), new_code_cell("print('next')")] * 3), path)
    executed, run = execute_notebook(path, timeout=120, kernel_name="python3")
    assert run.ok, run.error
    for widget, following in zip(executed.cells[0::2], executed.cells[1::2]):
        kinds = [list(output.get("data", {})) for output in widget.outputs]
        assert any("image/png" in kind for kind in kinds), kinds
        replied = widget.metadata.execution["shell.execute_reply"]
        started = following.metadata.execution["iopub.execute_input"]
        assert (_when(started) - _when(replied)).total_seconds() < 10


def _when(stamp: str):
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def test_a_reply_that_reaches_the_runner_late_fails_naming_the_cell():
    from datetime import datetime, timedelta, timezone

    from nbformat.v4 import new_code_cell

    from course_lib.notebooks import StalledCell, refuse_late_reply

    cell = new_code_cell("widgets.interactive(draw)")
    now = datetime.now(timezone.utc)
    refuse_late_reply(cell, 5, {"header": {"date": now - timedelta(seconds=2)}})
    with pytest.raises(StalledCell, match=r"cell 5 .*widgets.interactive\(draw\).* 600 s later"):
        refuse_late_reply(cell, 5, {"header": {"date": now - timedelta(seconds=600)}})


def test_the_runners_channel_waits_in_short_polls_and_still_honours_its_timeout():
    import asyncio
    import time
    from queue import Empty

    import zmq
    import zmq.asyncio
    from jupyter_client.session import Session

    from course_lib.notebooks import POLL_SLICE_S, SlicedPollChannel

    async def exchange():
        context = zmq.asyncio.Context()
        reader, writer = context.socket(zmq.PAIR), context.socket(zmq.PAIR)
        reader.bind("inproc://channel")
        writer.connect("inproc://channel")
        session = Session()
        channel = SlicedPollChannel(reader, session)
        started = time.monotonic()
        with pytest.raises(Empty):
            await channel.get_msg(timeout=2.5 * POLL_SLICE_S)
        waited = time.monotonic() - started
        asyncio.get_running_loop().call_later(1.5 * POLL_SLICE_S, session.send, writer, "probe", {"n": 1})
        message = await channel.get_msg(timeout=30)
        reader.close(), writer.close(), context.term()
        return waited, message

    waited, message = asyncio.run(exchange())
    assert 2.4 * POLL_SLICE_S < waited < 4 * POLL_SLICE_S
    assert message["msg_type"] == "probe" and message["content"] == {"n": 1}


def test_foreign_output_flags_stderr_and_other_libraries_warnings_not_the_kits(tmp_path, capfd):
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    cells = {
        "notice": "import sys; sys.stderr.write('a library was compiled without GPU support\\n')",
        "library-warning": "import warnings; warnings.warn('this argument is deprecated', FutureWarning)",
        "kit-warning": "from course_lib.serving.lmdeploy_backend import LMDeployWarning\n"
        "warnings.warn('LMDeploy: falls back to its PyTorch engine', LMDeployWarning)",
        "own-print": "print('Lesson 99 · TINY mode on cpu')",
        "progress-bar": "from tqdm.auto import tqdm\nfor _ in tqdm(range(3)): pass",
    }
    path = tmp_path / "probe.ipynb"
    notebook = new_notebook(cells=[new_code_cell(source, id=name) for name, source in cells.items()])
    nbformat.write(notebook, path)
    executed, run = execute_notebook(path, timeout=120)
    assert run.ok, run.error
    found = foreign_output(executed)
    assert [cell for cell, _ in found] == ["notice", "library-warning"], found
    assert found[0][1] == "a library was compiled without GPU support"
    assert "FutureWarning: this argument is deprecated" in found[1][1]
    assert "without encryption" not in capfd.readouterr().err  # the kernel's own stderr: it has CurveZMQ keys


def test_a_kit_warning_is_told_from_a_librarys_warning_on_a_kit_line():
    from nbformat.v4 import new_code_cell, new_notebook, new_output

    from course_lib.notebooks import KIT_DIR

    raised = f"{KIT_DIR / 'evaluation' / 'plots.py'}:32: UserWarning: no CJK font\n  warnings.warn('no CJK')\n"
    pinned = f"{KIT_DIR / 'models.py'}:45: FutureWarning: `torch_dtype` is deprecated\n  model = load(path)\n"
    library = "/venv/site-packages/peft/tuners.py:9: UserWarning: merging is slow\n  warnings.warn(msg)\n"
    cell = new_code_cell("...", id="c1")
    cell.outputs = [
        new_output("stream", name="stderr", text=raised + pinned),
        new_output("stream", name="stdout", text="the lesson's own print\n" + library),
    ]
    found = foreign_output(new_notebook(cells=[cell]))
    assert found == [("c1", pinned.strip()), ("c1", library.strip())]


def test_every_warning_category_of_the_kit_counts_as_its_own():
    import ast

    from course_lib.notebooks import KIT_DIR, KIT_WARNINGS

    defined = {
        node.name
        for path in KIT_DIR.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.ClassDef) and any(ast.unparse(base).endswith("Warning") for base in node.bases)
    }
    assert defined == KIT_WARNINGS


def test_executed_copies_never_overwrite_the_lessons(tmp_path):
    from course_lib.lessons import NOTEBOOK_DIR
    from course_lib.notebooks import build_notebooks

    before = {p.name: p.read_bytes() for p in NOTEBOOKS}
    for out in (NOTEBOOK_DIR, NOTEBOOK_DIR / ".." / "notebooks"):
        with pytest.raises(ValueError, match="would overwrite them"):
            build_notebooks(out)
    copy = tmp_path / "01_meet_internvl2.ipynb"
    copy.write_bytes(before["01_meet_internvl2.ipynb"])
    with pytest.raises(ValueError, match="would overwrite them"):
        build_notebooks(tmp_path, notebooks=[copy])
    assert {p.name: p.read_bytes() for p in NOTEBOOKS} == before


def test_a_chinese_students_lesson_01_shows_the_hint_in_chinese():
    path = REPO_ROOT / "notebooks" / "zh" / "01_meet_internvl2.ipynb"
    executed, run = execute_notebook(path, timeout=600, env={"COURSE_MODE": "tiny", "MPLBACKEND": "Agg"})
    assert run.ok, run.error
    shown = check_outputs(executed)
    assert shown and all(text.startswith("先把 ") and "提示：" in text for text in shown), shown


def test_a_students_notebook_with_its_exercise_left_empty_shows_a_hint_not_a_traceback():
    path = REPO_ROOT / "notebooks" / "05_dynamic_tiling.ipynb"
    executed, run = execute_notebook(path, timeout=600, env={"COURSE_MODE": "tiny", "MPLBACKEND": "Agg"})
    assert run.ok, run.error
    shown = [
        out.get("text", "")
        for cell in executed.cells
        if cell.cell_type == "code" and "check(" in cell.source
        for out in cell.outputs
    ]
    assert shown == [
        "Fill in banner_tiles (still `...`), then run the cell again. Hint: a 10:1 picture within 12 tiles: "
        "which grid, and is a thumbnail added?\n",
        "Fill in my_grid (still `...`), then run the cell again. Hint: aspect = width / height; keep the grid "
        "(columns, rows) whose columns / rows is closest; on an exact tie, take the later grid only if "
        "width * height > 0.5 * 448 * 448 * columns * rows\n",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_lesson_states_goals_time_and_prerequisites_and_ends_with_a_recap_and_references(path):
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    opening, closing = "".join(cells[0]["source"]), "".join(cells[-1]["source"])
    assert cells[0]["cell_type"] == "markdown" and opening.startswith(f"# {path.name[:2]} ·")
    for part in ("**Goals**: ", "**Time**: about ", "**Prerequisites**: "):
        assert part in opening, f"{path.name}: the opening cell lacks {part!r}"
    assert cells[-1]["cell_type"] == "markdown" and closing.startswith("## Recap\n")
    references = closing.split("## References\n", 1)[1]
    assert references.count("\n* ") >= 1 and ("arXiv:" in references or "https://" in references), path.name


REAL_BRANCHES = [p for p in NOTEBOOKS if p.name[:2] not in ("10", "11")]  # 10 and 11 train: the real recipe needs a GPU


@pytest.fixture(scope="module")
def fake_foodieqa(tmp_path_factory):
    from course_lib.foodieqa import write_fake_release

    return write_fake_release(tmp_path_factory.mktemp("real") / "FAKE-foodieqa")


@pytest.mark.timeout(1200)
@pytest.mark.parametrize("path", REAL_BRANCHES, ids=lambda p: p.name)
def test_real_mode_branches_run_with_a_stand_in(path, fake_foodieqa):
    """Real mode forced on the CPU, with the course model standing in for InternVL2-2B and a fake FoodieQA release,
    so every lesson's real-mode code runs in CI. Lessons 10 and 11 train with the GPU recipe (AMP), which
    refuses without a GPU (test_finetune_plumbing::test_the_gpu_recipe_refuses_to_start_without_a_gpu)."""
    env = {
        "COURSE_MODE": "real",
        "COURSE_DEVICE": "cpu",
        "COURSE_MODEL_PATH": str(REPO_ROOT / "assets" / "course-model"),
        "COURSE_DATA_PATH": str(fake_foodieqa),
        "MPLBACKEND": "Agg",
    }
    executed, run = execute_notebook(path, timeout=600, env=env, solutions=True)
    assert run.ok, f"{path.name} failed in real mode after {run.seconds:.0f} s:\n{run.error}"
    assert_header(executed, path, "REAL mode on cpu")
    assert_only_own_output(executed, path)
