"""Mode resolution: one place decides tiny or real, and says why; bad settings get a clear error."""
import pytest

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
    assert "Mode:   tiny" in setup.describe()


def test_auto_picks_real_with_checkpoint_and_gpu(checkpoint, tmp_path):
    data = tmp_path / "FoodieQA"
    data.mkdir()
    setup = resolve(env={"COURSE_MODEL_PATH": str(checkpoint), "COURSE_DATA_PATH": str(data)}, has_cuda=True)
    assert (setup.mode, setup.device, setup.model_path, setup.data_path) == ("real", "cuda", checkpoint, data)
    assert setup.ensure_model() == checkpoint


def test_auto_without_gpu_stays_tiny_and_says_why(checkpoint):
    setup = resolve(env={"COURSE_MODEL_PATH": str(checkpoint)}, has_cuda=False)
    assert setup.mode == "tiny"
    assert any("needs a CUDA GPU" in reason for reason in setup.reasons)


def test_tiny_can_be_forced_on_a_gpu_machine(checkpoint):
    setup = resolve(env={"COURSE_MODE": "tiny", "COURSE_MODEL_PATH": str(checkpoint)}, has_cuda=True)
    assert (setup.mode, setup.device) == ("tiny", "cuda")


def test_real_without_data_warns(checkpoint):
    setup = resolve(env={"COURSE_MODE": "real", "COURSE_MODEL_PATH": str(checkpoint), "COURSE_CONFIG": str(_config_without_search(checkpoint.parent))}, has_cuda=True)
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
