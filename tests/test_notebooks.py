"""Every notebook is committed without outputs and executes in tiny mode in a fresh kernel (d2l style)."""

import json

import pytest
from conftest import REPO_ROOT

from course_lib.lessons import LESSONS
from course_lib.notebooks import execute_notebook

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))


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
    """With the exercises' solutions filled in and strict checks: every solution passes its check."""
    executed, run = execute_notebook(
        path, timeout=600, env={"COURSE_MODE": "tiny", "MPLBACKEND": "Agg"}, solutions=True
    )
    assert run.ok, f"{path.name} failed after {run.seconds:.0f} s:\n{run.error}"
    first_output = "".join(out.get("text", "") for out in executed.cells[1].outputs)
    assert "running in TINY mode" in first_output and "Why:" in first_output


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
    first_output = "".join(out.get("text", "") for out in executed.cells[1].outputs)
    assert "running in REAL mode on cpu" in first_output, first_output[:300]
