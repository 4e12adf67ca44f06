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


# ---- the serving Python: one function (serving_env.serving_python) for envcheck, api_server and the renderer ----
def _serving_bin(tmp_path):
    """A folder laid out like a serving environment's bin/: `python` is this very interpreter (a link to
    sys.executable, so it really runs, without lmdeploy), `lmdeploy` a command that is there but never run."""
    import os
    import sys

    bin_dir = tmp_path / "serving" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").symlink_to(sys.executable)
    (bin_dir / "lmdeploy").write_text("#!/bin/sh\necho 'not LMDeploy' >&2\nexit 1\n")
    os.chmod(bin_dir / "lmdeploy", 0o755)
    return bin_dir


def test_course_serving_python_is_used_by_envcheck_and_the_api_server(tmp_path, monkeypatch, tiny_path):
    import subprocess
    import sys
    from pathlib import Path

    from course_lib.serving.api_server import ApiServer, api_server_status, lmdeploy_cli
    from course_lib.serving.lmdeploy_backend import renderer_status
    from course_lib.serving.serving_env import lmdeploy_importable, serving_python

    monkeypatch.setenv("COURSE_SERVING_PYTHON", sys.executable)
    assert serving_python() == Path(sys.executable)

    bin_dir = _serving_bin(tmp_path)
    python = bin_dir / "python"
    assert subprocess.run([str(python), "-c", "print('runs')"], capture_output=True, text=True).stdout == "runs\n"
    monkeypatch.setenv("COURSE_SERVING_PYTHON", str(python))
    assert serving_python() == python
    # the api_server runs the `lmdeploy` next to that Python
    assert lmdeploy_cli() == bin_dir / "lmdeploy"
    assert api_server_status(has_cuda=True) == (True, f"{bin_dir / 'lmdeploy'} and a CUDA GPU are there")
    server = ApiServer(tiny_path, work_dir=tmp_path / "work")  # built, not started
    assert server.command[:3] == [str(bin_dir / "lmdeploy"), "serve", "api_server"]

    serving = envcheck.check_serving()
    if lmdeploy_importable():  # this kernel has LMDeploy itself: that is what the check reports
        assert serving.ok is True and "in this kernel" in serving.detail
        return
    # the check ran that Python for real: it cannot import lmdeploy, and the report says which Python and why
    assert serving.ok is False
    assert serving.detail == f"{python} (COURSE_SERVING_PYTHON) cannot import lmdeploy"
    assert "COURSE_SERVING_PYTHON" in serving.fix
    assert f"serving environment: {python} (COURSE_SERVING_PYTHON) cannot import lmdeploy" in envcheck.report()
    ok, why = renderer_status()  # LMDeploy's prompt rendering asks the same Python
    assert not ok and str(python) in why and "cannot import lmdeploy" in why


def test_a_course_serving_python_that_is_not_there_is_named(tmp_path, monkeypatch):
    import pytest

    from course_lib.serving.api_server import ApiServer, api_server_status
    from course_lib.serving.lmdeploy_backend import renderer_status
    from course_lib.serving.serving_env import ServingPythonError, lmdeploy_importable, serving_python

    missing = tmp_path / "no-such-env" / "bin" / "python"
    monkeypatch.setenv("COURSE_SERVING_PYTHON", str(missing))
    message = f"COURSE_SERVING_PYTHON is set to {missing}, which is not a file"
    with pytest.raises(ServingPythonError, match="COURSE_SERVING_PYTHON is set to .*no-such-env.*not a file"):
        serving_python()

    serving = envcheck.check_serving()
    assert serving.ok is False and serving.detail.startswith(message) and "COURSE_SERVING_PYTHON" in serving.fix
    assert f"[MISS] serving environment: {message}" in envcheck.report(short=True)

    ok, why = api_server_status(has_cuda=True)
    assert not ok and why.startswith(message)
    with pytest.raises(ServingPythonError, match="no-such-env"):
        ApiServer(tmp_path / "model")  # refused before anything is written or started
    if not lmdeploy_importable():
        ok, why = renderer_status()
        assert not ok and why.startswith(message)
