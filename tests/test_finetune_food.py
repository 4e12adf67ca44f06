"""The fine-tuning lesson's acceptance in tiny mode, on the CPU: the course model ("before"), a LoRA fine-tune
with XTuner that is interrupted half-way and resumed, conversion, evaluation. Slow by nature (minutes).

One run serves every check: resuming is exact (test_finetune_plumbing proves it bit for bit on a small run),
so the interrupted-and-resumed run is the run the lesson would have made in one go. It is made where the
lessons look for runs (the cache's runs/ folder), so lessons 10 and 11 reuse it instead of training again.
Figures go to build/test-artefacts/finetune_figures.json."""

import json
import time

import pytest
from conftest import REPO_ROOT

from course_lib.config import resolve
from course_lib.finetune.convert import convert_checkpoint
from course_lib.finetune.plan import (
    PROBES,
    converted_dir,
    evaluate_checkpoint,
    finished_run_for,
    plan_finetune,
    start_finetune,
)
from course_lib.finetune.runner import train
from course_lib.probe_scores import probe_figures

FIGURES = REPO_ROOT / "build" / "test-artefacts" / "finetune_figures.json"
pytestmark = pytest.mark.timeout(3600)


def _mc(result, group, split="test"):
    return result.accuracy(group=group, split=split, kind="mc")


def _food_figures(result) -> dict:
    return {
        "new_mc_test": _mc(result, "new"),
        "base_mc_test": _mc(result, "base"),
        "new_open_test": result.accuracy(group="new", split="test", kind="open"),
        "base_open_test": result.accuracy(group="base", split="test", kind="open"),
        "new_mc_ood": _mc(result, "new", "ood"),
        "base_mc_ood": _mc(result, "base", "ood"),
    }


@pytest.fixture(scope="module")
def figures():
    values = {}
    yield values
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    FIGURES.write_text(json.dumps(values, indent=2) + "\n")


@pytest.fixture(scope="module")
def plan():
    return plan_finetune(resolve(env={"COURSE_MODE": "tiny"}, has_cuda=False), log=lambda *_: None)


@pytest.fixture(scope="module")
def before(plan, figures):
    results = evaluate_checkpoint(plan.base_model, plan, progress=False)
    result = results["kit food set"]
    figures["before probes"] = probe_figures(results[PROBES])
    figures["before"] = _food_figures(result)
    return results


@pytest.fixture(scope="module")
def resumed(plan, figures):
    run = start_finetune(plan)  # a new folder in the cache's runs/, never an earlier run's
    started = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        train(run, progress=False, stop_after_iters=32)  # resumes from iter_16.pth (saved every 16)
    assert run.info()["status"] == "interrupted" and run.latest_checkpoint() is not None
    final = train(run, progress=False)
    seconds = time.perf_counter() - started
    converted = convert_checkpoint(run, converted_dir(run, plan.cache), log=lambda *_: None)
    results = evaluate_checkpoint(converted, plan, progress=False)
    result = results["kit food set"]
    figures["after probes"] = probe_figures(results[PROBES])
    figures["interrupted_and_resumed"] = {
        "train_seconds": round(seconds, 1),
        "iterations": run.info()["total_iters"],
        "resumed_from": run.info().get("resumed_from"),
        "final": final.name,
        **_food_figures(result),
    }
    return run, results


def test_before_the_model_does_not_know_the_new_dishes(before):
    before = before["kit food set"]
    assert _mc(before, "new") <= 0.40
    assert before.accuracy(group="new", split="test", kind="open") <= 0.10


def test_after_the_interrupted_and_resumed_fine_tune_it_does(resumed):
    run, results = resumed
    result = results["kit food set"]
    assert run.info()["resumed_from"] is not None and run.finished
    assert _mc(result, "new") >= 0.85


def test_base_dishes_drop_by_at_most_5_points(before, resumed):
    _, results = resumed
    assert _mc(results["kit food set"], "base") >= _mc(before["kit food set"], "base") - 0.05


def test_the_lessons_find_this_run(plan, resumed):
    run, _ = resumed
    assert finished_run_for(plan) == run


@pytest.fixture(scope="module")
def converted_in_the_course_environment(plan, resumed):
    from conftest import load_probe, transformers_environments

    run, _ = resumed
    folder = converted_dir(run, plan.cache)
    course = load_probe(transformers_environments()["course"], folder)["checkpoints"][str(folder)]
    assert "error" not in course and course["differing"] == [], course
    return folder, course


@pytest.mark.parametrize("environment", ["serving", "newest"])
def test_the_converted_fine_tune_loads_alike_under_every_transformers(converted_in_the_course_environment, environment):
    """The loading rule for the third kind of checkpoint the kit writes (tests/test_loading_rule.py has the other
    two): the converted fine-tune holds its files' weights and answers as in the course environment, under the
    serving environment's transformers and the newest one."""
    from conftest import load_probe, require_environment, transformers_environments

    python = transformers_environments()[environment]
    require_environment(environment, python)
    folder, course = converted_in_the_course_environment
    report = load_probe(python, folder)
    here = report["checkpoints"][str(folder)]
    assert "error" not in here and here["differing"] == [], f"transformers {report['transformers']}: {here}"
    assert (here["batch"], here["two_turns"]) == (course["batch"], course["two_turns"]), (here, course)
