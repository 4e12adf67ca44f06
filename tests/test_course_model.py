"""The course model: shipped ready in assets/course-model, built from today's sources, and it answers.

The acceptance figures are measured on the food set's held-out test pictures, in both languages, through
the same model.chat calls the lessons make (course_lib.course_model_figures.measure; the benchmark script
benchmarks/course_model_benchmark.py prints the same figures)."""

import dataclasses
import json

import pytest

from course_lib import course_model, course_model_figures
from course_lib.config import cache_dir
from course_lib.finetune import pretrain

pytestmark = pytest.mark.timeout(1800)


def test_the_shipped_weights_are_built_from_the_current_sources():
    assert course_model.shipped_is_current(), (
        f"assets/course-model was built from recipe {course_model.shipped_hash()}, but the recipe's sources (the "
        f"pre-training recipe, the tiny model, the food set) now hash to {course_model.recipe_hash()}: rebuild it "
        "with `make course-model PUBLISH=1` (about 16 CPU minutes) and commit assets/course-model"
    )


def test_the_shipped_weights_are_the_ones_recorded():
    info = json.loads((course_model.SHIPPED_DIR / course_model.INFO_FILE).read_text())
    assert course_model._sha256(course_model.SHIPPED_DIR / "model.safetensors") == info["model.safetensors sha256"]
    for name in course_model.LICENCE_FILES:
        assert (course_model.SHIPPED_DIR / name).is_file(), f"assets/course-model/{name} is missing"


def test_a_changed_recipe_makes_the_shipped_copy_stale(monkeypatch, tmp_path):
    monkeypatch.setitem(pretrain.RECIPE, "epochs", pretrain.RECIPE["epochs"] + 1)
    assert not course_model.shipped_is_current()
    assert "of other sources" in course_model.status(tmp_path)
    # The recipe itself takes 15 minutes: this one records what the registry hands it (the tiny checkpoint and
    # the food set, built for real in tmp_path) and returns at once.
    handed = []
    quick = dataclasses.replace(
        pretrain.COURSE_MODEL_BUILD, make=lambda staging, target, inputs, log, **options: handed.append(inputs) or {}
    )
    monkeypatch.setattr(course_model, "COURSE_MODEL_BUILD", quick)
    messages = []
    built = course_model.ensure_course_model(tmp_path, log=messages.append)
    assert built == quick.folder(tmp_path) and quick.is_built(tmp_path)
    assert sorted(handed[0]) == ["food_vqa", "tiny-internvl2"] and all(p.parent == tmp_path for p in handed[0].values())
    assert "make course-model PUBLISH=1" in messages[0]
    assert course_model.ensure_course_model(tmp_path, log=messages.append) == built and len(handed) == 1


def test_lessons_get_the_course_model_in_tiny_mode():
    from course_lib.artefacts import describe, lesson_model
    from course_lib.config import resolve

    setup = resolve(env={"COURSE_MODE": "tiny"}, has_cuda=False)
    assert lesson_model(setup) == course_model.SHIPPED_DIR
    assert "the course model" in describe(setup)


def test_cuisines_are_read_longest_name_first():
    assert course_model_figures.cuisines_named("它是日本料理。") == ["Japanese"]
    assert course_model_figures.cuisines_named("It is Chinese-American cuisine.") == ["Chinese-American"]
    assert course_model_figures.cuisines_named("美式中餐，不是中国菜") == ["Chinese-American", "Chinese"]
    assert course_model_figures.cuisines_named("steamed steamed steamed") == []


@pytest.fixture(scope="module")
def figures():
    from conftest import REPO_ROOT

    from course_lib.kit_food_set import ensure_food_vqa

    data = ensure_food_vqa(cache_dir(), log=lambda *_: None)
    values = course_model_figures.measure(course_model.SHIPPED_DIR, data, cache_dir(), progress=False)
    out = REPO_ROOT / "build" / "test-artefacts" / "course_model_figures.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(values, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return values


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_it_names_base_dishes(figures, lang):
    assert figures[lang]["base_mc"] >= 0.85, course_model_figures.format_figures(figures)
    assert figures[lang]["base_open"] >= 0.80, course_model_figures.format_figures(figures)


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_the_second_turn_uses_the_first(figures, lang):
    assert figures[lang]["base_follow_up"] >= 0.75, course_model_figures.format_figures(figures)


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_it_does_not_know_the_new_dishes_before_the_fine_tune(figures, lang):
    assert figures[lang]["new_mc"] <= 0.40 and figures[lang]["new_says_unknown"] >= 0.80, (
        course_model_figures.format_figures(figures)
    )


def test_it_has_the_general_skills_the_probes_check_before_the_fine_tune(figures):
    """Colour of shapes it answers (course_lib.probes); yes/no about base dishes' pictures only a little better
    than chance, and never yes about a new dish it has no name for. Counting is at chance (README): not checked.
    The colour bar is 0.80: two builds of the same recipe, differing only by float rounding (another machine's CPU),
    scored 91.7% (2026-12-03) and 81.9% (2026-12-07); the skill is there, its margin is not."""
    probes = figures["probes"]
    assert probes["shapes_colour"] >= 0.80, course_model_figures.format_figures(figures)
    assert probes["base_yes_no"] >= 0.55 and probes["new_says_yes"] <= 0.10, course_model_figures.format_figures(
        figures
    )


def test_answers_end_and_never_repeat_one_token(figures):
    assert figures["ended_within_max_new_tokens"] >= 0.95 and figures["one_token_repeated"] == 0, figures["examples"]


def test_the_shipped_remote_code_is_the_kits_own():
    """A checkpoint folder must carry its remote code; these copies are the kit's sources, byte for byte."""
    from course_lib.tiny_internvl2.build import REMOTE_CODE_DIR, REMOTE_CODE_FILES

    for name in REMOTE_CODE_FILES:
        assert (course_model.SHIPPED_DIR / name).read_bytes() == (REMOTE_CODE_DIR / name).read_bytes(), name
