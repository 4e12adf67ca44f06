"""One loading rule: every checkpoint the kit writes loads with the weights its files hold and answers alike under
every transformers the kit installs (the course environment's 4.48, the serving environment's 4.57) and under the
newest on the package index (requirements/newest.in), run in each of those environments (tests/load_probe.py).
The converted fine-tune is checked where it is made (tests/test_finetune_food.py).

The tiny remote code keeps InternVL2's class hierarchy (InternLM2ForCausalLM without GenerationMixin), so it fails
where the real checkpoint fails, and the loader is what makes it generate under transformers >= 4.50."""

import json
import shutil

import pytest
from conftest import REPO_ROOT, load_probe, require_environment, transformers_environments

from course_lib import models

COURSE_MODEL = REPO_ROOT / "assets" / "course-model"
ENVIRONMENTS = transformers_environments()


@pytest.fixture(scope="module")
def reports(tiny_path):
    """Each environment's probe of the tiny checkpoint and the shipped course model (one process each)."""
    found = {}
    for name, python in ENVIRONMENTS.items():
        if python.is_file():
            found[name] = load_probe(python, tiny_path, COURSE_MODEL)
    return found


@pytest.mark.parametrize("environment", ["course", "serving", "newest"])
@pytest.mark.parametrize("checkpoint", ["tiny checkpoint", "course model"])
def test_the_kits_checkpoints_load_faithfully_and_answer_alike(reports, tiny_path, environment, checkpoint):
    require_environment(environment, ENVIRONMENTS[environment])
    folder = str(tiny_path if checkpoint == "tiny checkpoint" else COURSE_MODEL)
    here, course = reports[environment]["checkpoints"][folder], reports["course"]["checkpoints"][folder]
    version = reports[environment]["transformers"]
    assert "error" not in here, f"transformers {version}: {here.get('error')}"
    assert here["differing"] == [], f"transformers {version} loaded these weights unlike the files: {here['differing']}"
    assert here["batch"] == course["batch"] and here["two_turns"] == course["two_turns"], (
        f"transformers {version} answers differently from the course environment's 4.48:\n"
        f"{json.dumps(here, ensure_ascii=False)}\n{json.dumps(course, ensure_ascii=False)}"
    )
    if checkpoint == "course model":  # the course model answers, not noise: it names dishes it knows
        assert any("拉面" in answer or "ramen" in answer for answer in here["batch"]), here["batch"]


@pytest.mark.parametrize("environment", ["course", "serving", "newest"])
def test_the_stand_in_needs_the_loader_to_generate_exactly_where_internvl2_does(reports, environment):
    """InternVL2's InternLM2ForCausalLM does not inherit GenerationMixin: fine before transformers 4.50 (every
    PreTrainedModel had generate), no `generate` from 4.50 on. The tiny checkpoint's class is the same, so the
    loader has to add it in the serving and newest environments and not in the course one."""
    require_environment(environment, ENVIRONMENTS[environment])
    version = reports[environment]["transformers"]
    needed = tuple(int(part) for part in version.split(".")[:2]) >= (4, 50)
    for folder, report in reports[environment]["checkpoints"].items():
        assert report["generate_added"] == needed, f"{folder} under transformers {version}: {report}"


def test_a_top_level_config_that_ties_the_head_is_refused_not_answered_with_noise(tmp_path, reports):
    """The course model shipped before 2026-12-07 had tie_word_embeddings: true at the top of config.json
    (PretrainedConfig's default) and false in llm_config; transformers 4.57 then replaced its trained head with the
    embeddings and it answered byte noise. The configuration class now follows llm_config; an old config.json
    read by old remote code is refused by the loader in the serving environment."""
    require_environment("serving", ENVIRONMENTS["serving"])
    old = tmp_path / "old-config"
    shutil.copytree(COURSE_MODEL, old)
    config = json.loads((old / "config.json").read_text(encoding="utf-8"))
    config["tie_word_embeddings"] = True
    (old / "config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False), encoding="utf-8")
    text = (old / "configuration_internvl_chat.py").read_text(encoding="utf-8")
    (old / "configuration_internvl_chat.py").write_text(  # the old class: no line that follows llm_config
        text.replace("self.tie_word_embeddings = self.llm_config.tie_word_embeddings", "pass"), encoding="utf-8"
    )
    report = load_probe(ENVIRONMENTS["serving"], old)["checkpoints"][str(old)]
    assert "error" in report and "tie_word_embeddings" in report["error"], report


def test_transformers_5_refuses_internvl2s_own_remote_code(tmp_path):
    """Remote code other than the kit's (InternVL2's published files) is refused under transformers 5 with what
    to install, and accepted under 4.x. Checked without loading: the rule reads the files and the version."""
    folder = tmp_path / "InternVL2-2B-like"
    shutil.copytree(COURSE_MODEL, folder)
    (folder / "modeling_internlm2.py").write_text("# InternVL2's published modeling file\n", encoding="utf-8")
    assert models.has_kits_remote_code(COURSE_MODEL) and not models.has_kits_remote_code(folder)
    models.refuse_old_remote_code(folder, version="4.57.6")
    models.refuse_old_remote_code(COURSE_MODEL, version="5.25.0")
    with pytest.raises(RuntimeError, match=r"transformers>=4.48,<5"):
        models.refuse_old_remote_code(folder, version="5.25.0")
