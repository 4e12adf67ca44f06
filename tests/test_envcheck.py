"""The environment check: every piece is reported, and every missing piece comes with a fix."""

from course_lib import envcheck
from course_lib.config import resolve


def test_report_covers_every_piece():
    text = envcheck.report()
    for name in (
        "Mode:",
        "course environment",
        "GPU",
        "XTuner",
        "serving environment",
        "model",
        "data",
        "disk",
        "Lessons:",
    ):
        assert name in text, name


def test_every_missing_piece_says_how_to_fix_it():
    setup = resolve(env={"COURSE_MODE": "tiny"}, has_cuda=False)
    for check in envcheck.run_checks(setup):
        if check.ok is False:
            assert check.fix, check.name


def test_missing_real_data_names_the_variable(tmp_path):
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text('{"architectures": ["InternVLChatModel"]}')
    setup = resolve(
        env={"COURSE_MODE": "real", "COURSE_MODEL_PATH": str(model), "COURSE_DATA_PATH": str(tmp_path / "FoodieQA")},
        has_cuda=True,
    )
    data = envcheck.check_data(setup)
    assert data.ok is False and "COURSE_DATA_PATH" in data.fix
    assert envcheck.check_model(setup).ok is True


def test_a_non_internvl_checkpoint_is_flagged(tmp_path, monkeypatch):
    import pytest

    from course_lib.config import CourseConfigError

    (tmp_path / "config.json").write_text('{"architectures": ["LlamaForCausalLM"]}')
    with pytest.raises(CourseConfigError, match="LlamaForCausalLM"):  # refused up front, before anything loads
        resolve(env={"COURSE_MODE": "real", "COURSE_MODEL_PATH": str(tmp_path)}, has_cuda=True)
    monkeypatch.setenv("COURSE_MODE", "real")
    monkeypatch.setenv("COURSE_MODEL_PATH", str(tmp_path))
    text = envcheck.report(short=True)
    assert "Course configuration error" in text and "LlamaForCausalLM" in text


def test_lesson_plan_lists_each_notebook():
    setup = resolve(env={"COURSE_MODE": "tiny"}, has_cuda=False)
    rows = envcheck.lesson_plan(setup, envcheck.run_checks(setup))
    assert rows and all("tiny mode on cpu" in row for row in rows)


def test_lesson_plan_names_what_a_lesson_lacks(monkeypatch):
    from course_lib import lessons

    needy = lessons.Lesson("01", "01_meet_internvl2.ipynb", "needs a GPU and data", ("gpu", "data"))
    monkeypatch.setattr(envcheck, "available_lessons", lambda: [needy])
    setup = resolve(env={"COURSE_MODE": "tiny"}, has_cuda=False)
    checks = [envcheck.Check("GPU", None, "none"), envcheck.Check("data", True, "here")]
    assert envcheck.lesson_plan(setup, checks) == ["01 needs a GPU and data: tiny mode on cpu (without: gpu)"]


def test_check_fails_on_a_configuration_error_so_make_course_stops():
    import os
    import subprocess
    import sys

    env = {**os.environ, "COURSE_MODE": "fast"}
    result = subprocess.run(
        [sys.executable, "-m", "course_lib", "check", "--short"], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Course configuration error: mode must be one of" in result.stdout
    assert "error: mode must be one of" in result.stderr
