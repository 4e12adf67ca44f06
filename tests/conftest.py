import os
from pathlib import Path

# Nothing in the test suite may reach a model hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

REPO_ROOT = Path(__file__).resolve().parent.parent
FOOD_IMAGES = REPO_ROOT / "assets" / "images" / "fluent-emoji-3d"


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
