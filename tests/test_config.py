"""Mode resolution: one place decides tiny or real, and says why; bad settings get a clear error."""

import pytest

from course_lib.artefacts import describe, lesson_model
from course_lib.config import CourseConfigError, resolve


@pytest.fixture
def checkpoint(tmp_path):
    folder = tmp_path / "InternVL2-2B"
    folder.mkdir()
    (folder / "config.json").write_text('{"architectures": ["InternVLChatModel"]}')
    return folder


def test_default_on_a_cpu_machine_is_tiny_with_reasons():
    setup = resolve(env={}, has_cuda=False)
    assert setup.mode == "tiny" and setup.device == "cpu"
    assert any("no InternVL2 checkpoint" in reason for reason in setup.reasons)
    assert any("no CUDA GPU" in reason for reason in setup.reasons)
    assert setup.data_path is None  # the kit's own food set, built on first use
    assert "Mode:   tiny" in describe(setup)


def test_auto_picks_real_with_checkpoint_and_gpu(checkpoint, tmp_path):
    data = tmp_path / "FoodieQA"
    data.mkdir()
    setup = resolve(env={"COURSE_MODEL_PATH": str(checkpoint), "COURSE_DATA_PATH": str(data)}, has_cuda=True)
    assert (setup.mode, setup.device, setup.model_path, setup.data_path) == ("real", "cuda", checkpoint, data)
    assert lesson_model(setup) == checkpoint


def test_auto_without_gpu_stays_tiny_and_says_why(checkpoint):
    setup = resolve(env={"COURSE_MODEL_PATH": str(checkpoint)}, has_cuda=False)
    assert setup.mode == "tiny"
    assert any("needs a CUDA GPU" in reason for reason in setup.reasons)


def test_tiny_can_be_forced_on_a_gpu_machine(checkpoint):
    setup = resolve(env={"COURSE_MODE": "tiny", "COURSE_MODEL_PATH": str(checkpoint)}, has_cuda=True)
    assert (setup.mode, setup.device) == ("tiny", "cuda")


def test_real_without_data_warns(checkpoint):
    setup = resolve(
        env={
            "COURSE_MODE": "real",
            "COURSE_MODEL_PATH": str(checkpoint),
            "COURSE_CONFIG": str(_config_without_search(checkpoint.parent)),
        },
        has_cuda=True,
    )
    assert setup.mode == "real" and setup.data_path is None
    assert any("FoodieQA" in warning for warning in setup.warnings)


def _config_without_search(folder):
    path = folder / "course.yaml"
    path.write_text("mode: auto\nreal:\n  model_search: []\n  data_search: []\n")
    return path


@pytest.mark.parametrize(
    "env, has_cuda, message",
    [
        ({"COURSE_MODE": "fast"}, False, "mode must be one of"),
        ({"COURSE_DEVICE": "cuda"}, False, "torch sees no CUDA GPU"),
        ({"COURSE_DEVICE": "tpu"}, False, "device must be auto, cpu, cuda or cuda:N"),
        ({"COURSE_MODEL_PATH": "/nonexistent/InternVL2-2B"}, True, "has no config.json"),
        ({"COURSE_CONFIG": "/nonexistent/course.yaml"}, False, "does not exist"),
    ],
)
def test_bad_settings_name_the_fix(env, has_cuda, message):
    with pytest.raises(CourseConfigError, match=message):
        resolve(env=env, has_cuda=has_cuda)


def test_real_mode_needs_a_checkpoint_and_a_gpu(checkpoint, tmp_path):
    config = _config_without_search(tmp_path)
    with pytest.raises(CourseConfigError, match="no InternVL2 checkpoint was found"):
        resolve(env={"COURSE_MODE": "real", "COURSE_CONFIG": str(config)}, has_cuda=True)
    with pytest.raises(CourseConfigError, match="real mode needs a CUDA GPU"):
        resolve(env={"COURSE_MODE": "real", "COURSE_MODEL_PATH": str(checkpoint)}, has_cuda=False)


def test_shared_folders_are_searched(checkpoint, tmp_path):
    config = tmp_path / "course.yaml"
    config.write_text(f"real:\n  model_search: [/nonexistent/model, {checkpoint}]\n  data_search: [{tmp_path}]\n")
    setup = resolve(env={"COURSE_CONFIG": str(config)}, has_cuda=True)
    assert (setup.mode, setup.model_path, setup.data_path) == ("real", checkpoint, tmp_path)


def test_invalid_yaml_names_the_file(tmp_path):
    config = tmp_path / "course.yaml"
    config.write_text("mode: [tiny\n")
    with pytest.raises(CourseConfigError, match=str(config)):
        resolve(env={"COURSE_CONFIG": str(config)}, has_cuda=False)


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"architectures": ["BertModel"]}', "describes \\['BertModel'\\], not an InternVL2 chat model"),
        ("", "is not valid JSON"),
        ("{not json", "is not valid JSON"),
        (
            '{"architectures": ["InternVLChatModel"], '
            '"auto_map": {"AutoModel": "modeling_internvl_chat.InternVLChatModel"}}',
            "lacks its remote-code files modeling_internvl_chat.py",
        ),
    ],
)
def test_a_folder_that_is_no_internvl2_checkpoint_is_refused_up_front(tmp_path, content, message):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(content)
    with pytest.raises(CourseConfigError, match=message):
        resolve(env={"COURSE_MODEL_PATH": str(folder)}, has_cuda=True)


def test_a_dotted_checkpoint_folder_is_refused_with_the_fix(tmp_path):
    folder = tmp_path / "InternVL2-2B.v2"
    folder.mkdir()
    (folder / "config.json").write_text('{"architectures": ["InternVLChatModel"]}')
    with pytest.raises(CourseConfigError, match="has a dot in its name.*symbolic link"):
        resolve(env={"COURSE_MODEL_PATH": str(folder)}, has_cuda=True)


def test_real_mode_on_the_cpu_by_request_is_allowed_with_a_warning(checkpoint):
    setup = resolve(
        env={"COURSE_MODE": "real", "COURSE_DEVICE": "cpu", "COURSE_MODEL_PATH": str(checkpoint)}, has_cuda=False
    )
    assert (setup.mode, setup.device) == ("real", "cpu") and any("by request" in w for w in setup.warnings)
    with pytest.raises(CourseConfigError, match="set COURSE_DEVICE=cpu"):
        resolve(env={"COURSE_MODE": "real", "COURSE_MODEL_PATH": str(checkpoint)}, has_cuda=False)


def test_a_cache_folder_that_is_a_file_is_a_clear_error(tmp_path):
    from course_lib.config import cache_dir

    (tmp_path / "cache").write_text("")
    with pytest.raises(CourseConfigError, match="is a file; point it at a folder"):
        cache_dir({"COURSE_CACHE_DIR": str(tmp_path / "cache")})


def test_a_lesson_opens_with_one_line_and_explains_on_request(monkeypatch, capsys):
    from course_lib import begin

    monkeypatch.setenv("COURSE_MODE", "tiny")
    setup = begin("10")
    header, *rest = capsys.readouterr().out.splitlines()
    assert header == (
        f"Lesson 10 · TINY mode on {setup.device} · model: the course model (tiny InternVL2) · details: setup.explain()"
    )
    assert all(line.startswith("plots: no CJK font") for line in rest)  # the only other line, on a machine without
    setup.explain()
    explained = capsys.readouterr().out
    assert "Mode:   tiny" in explained and "Why:\n  - tiny mode was asked for (COURSE_MODE=tiny)" in explained


def test_the_setups_warnings_follow_the_header(monkeypatch, capsys, checkpoint):
    from course_lib import begin

    for name, value in {"COURSE_MODE": "real", "COURSE_DEVICE": "cpu", "COURSE_MODEL_PATH": str(checkpoint)}.items():
        monkeypatch.setenv(name, value)
    setup = begin("06")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("Lesson 06 · REAL mode on cpu · model: InternVL2-2B · ")
    assert lines[1] == f"! {setup.warnings[0]}" and "by request" in lines[1]
