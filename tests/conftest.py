import os
from pathlib import Path

# Nothing in the test suite may reach a model hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.pop("COURSE_LANG", None)  # the tests speak English unless a test asks for Chinese (a zh_CN shell does not)


import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

REPO_ROOT = Path(__file__).resolve().parent.parent
FOOD_IMAGES = REPO_ROOT / "assets" / "images" / "fluent-emoji-3d"


@pytest.fixture(autouse=True)
def english_unless_asked():
    """begin() settles the language by setting COURSE_LANG in its process: a test that calls it (or sets it) must
    not leave it for the next one, nor for the kernels the notebook tests start."""
    yield
    os.environ.pop("COURSE_LANG", None)


@pytest.fixture(scope="session")
def tiny_path():
    from course_lib.config import cache_dir
    from course_lib.tiny_internvl2 import ensure_tiny_checkpoint

    return ensure_tiny_checkpoint(cache_dir())


@pytest.fixture(scope="session")
def tiny(tiny_path):
    """(model in float32 on the CPU, tokenizer), loaded as users load InternVL2."""
    from course_lib.models import load_internvl

    return load_internvl(tiny_path, "cpu", torch.float32)


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    """The kit's food set, built afresh into a folder of the test session (seconds)."""
    from course_lib.kit_food_set import ensure_food_vqa

    return ensure_food_vqa(tmp_path_factory.mktemp("food-cache"), log=lambda *a: None)


@pytest.fixture(scope="session")
def dishes(built):
    """The dish table of the kit's food set (``built``)."""
    import json

    return json.loads((built / "dishes.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def dumpling_pixels():
    from course_lib.tiling import load_image

    return load_image(FOOD_IMAGES / "1f95f.webp")


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op thread for a module whose tensors are tiny: more threads only add synchronisation, and on
    a busy 2-core machine two spinning threads made a 0.2 s answer take 10 s. Restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def internvl2_2b_shaped(tiny_path, tmp_path_factory):
    """The tiny checkpoint with InternVL2-2B's chat settings: its tokenizer carries InternLM2-chat's chat
    template (assets/chat-templates, see its README) and config.json sets no system_message, so chat() uses the
    template's default system line, as the real checkpoint does. Weights and vocabulary stay the tiny ones."""
    import json
    import shutil

    from course_lib.checkpoints import internlm2_chat_template

    folder = tmp_path_factory.mktemp("shaped") / "InternVL2-2B-shaped"
    shutil.copytree(tiny_path, folder)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    config.pop("system_message", None)
    (folder / "config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False), encoding="utf-8")
    tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    tokenizer_config["chat_template"] = internlm2_chat_template()
    (folder / "tokenizer_config.json").write_text(
        json.dumps(tokenizer_config, indent=2, ensure_ascii=False), encoding="utf-8"
    )
    return folder


# ---- the loading rule: one checkpoint, every transformers the kit installs ---------------------------------
def transformers_environments() -> dict:
    """name -> Python of each environment whose transformers the kit's checkpoints must load under: the course
    environment (4.48), the serving environment (4.57) and the newest transformers on the index (.venv-newest)."""
    import sys

    from course_lib.serving.serving_env import serving_python

    return {
        "course": Path(sys.executable),
        "serving": serving_python() or REPO_ROOT / ".venv-serving" / "bin" / "python",
        "newest": REPO_ROOT / ".venv-newest" / "bin" / "python",
    }


def require_environment(name: str, python: Path) -> None:
    """Skip where a developer has not built that environment; CI builds them all (.ci/run), so there it fails."""
    if Path(python).is_file():
        return
    commands = {"serving": "make serving-env", "newest": "make newest-env", "site": "make site-env"}
    command = commands.get(name, "make env")
    message = f"the {name} environment ({python}) is not built: `{command}` builds it"
    if os.environ.get("CI"):
        pytest.fail(message + " (CI builds it in .ci/run; this run did not)")
    pytest.skip(message)


def load_probe(python: Path, *folders) -> dict:
    """Run tests/load_probe.py in `python` on checkpoint folders: {"transformers": version, "checkpoints": {...}}."""
    import json
    import subprocess

    result = subprocess.run(
        [str(python), str(REPO_ROOT / "tests" / "load_probe.py"), *map(str, folders)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=900,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("PROBE ")]
    assert lines, f"{python} tests/load_probe.py printed no report (exit {result.returncode}):\n{result.stderr[-3000:]}"
    return json.loads(lines[-1][len("PROBE ") :])


@pytest.fixture
def small_data(tmp_path):
    """56 XTuner records of one picture (near the fewest the tiny recipe's warm-up allows, 54) and their folder."""
    import json

    record = {
        "image": "1f95f.webp",
        "conversations": [{"from": "human", "value": "<image>\n这是什么？"}, {"from": "gpt", "value": "饺子"}],
    }
    data = tmp_path / "train.json"
    data.write_text(json.dumps([record] * 56, ensure_ascii=False))
    return data, FOOD_IMAGES
