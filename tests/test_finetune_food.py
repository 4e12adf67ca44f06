"""The fine-tuning lesson's acceptance in tiny mode, on the CPU: pre-train, LoRA fine-tune with XTuner,
convert, evaluate. Slow by nature (minutes): pre-training is cached; two fine-tunes run, one of them
interrupted half-way and resumed. Figures go to build/test-artefacts/finetune_figures.json."""
import json
import time

import pytest

from conftest import REPO_ROOT
from course_lib.config import resolve
from course_lib.finetune.convert import convert_checkpoint
from course_lib.finetune.food import evaluate_checkpoint, plan_finetune, start_finetune
from course_lib.finetune.runner import train

FIGURES = REPO_ROOT / "build" / "test-artefacts" / "finetune_figures.json"
pytestmark = pytest.mark.timeout(3600)


def _mc(result, group, split="test"):
    return result.accuracy(group=group, split=split, kind="mc")


@pytest.fixture(scope="module")
def figures():
    values = {}
    yield values
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    FIGURES.write_text(json.dumps(values, indent=2) + "\n")


@pytest.fixture(scope="module")
def plan(figures):
    started = time.perf_counter()
    plan = plan_finetune(resolve(env={"COURSE_MODE": "tiny"}, has_cuda=False), log=lambda *_: None)
    figures["plan_seconds (pre-training when not cached)"] = round(time.perf_counter() - started, 1)
    info = json.loads((plan.base_model / "pretrain_info.json").read_text())
    figures["pretraining"] = {k: info[k] for k in ("steps", "records", "seconds")}
    return plan


def _finetune_and_evaluate(plan, runs, figures, label, interrupt_at=None):
    run = start_finetune(plan, f"test-{label}", runs=runs)
    started = time.perf_counter()
    if interrupt_at:
        with pytest.raises(KeyboardInterrupt):
            train(run, progress=False, stop_after_iters=interrupt_at)
        assert run.info()["status"] == "interrupted" and run.latest_checkpoint() is not None
    final = train(run, progress=False)
    seconds = time.perf_counter() - started
    converted = convert_checkpoint(run, runs / f"converted-{label}", log=lambda *_: None)
    result = evaluate_checkpoint(converted, plan, progress=False)["kit food set"]
    figures[label] = {"train_seconds": round(seconds, 1), "iterations": run.info()["total_iters"],
                      "resumed_from": run.info().get("resumed_from"), "final": final.name,
                      "new_mc_test": _mc(result, "new"), "base_mc_test": _mc(result, "base"),
                      "new_open_test": result.accuracy(group="new", split="test", kind="open"),
                      "new_mc_ood": _mc(result, "new", "ood")}
    return run, result


@pytest.fixture(scope="module")
def before(plan, figures):
    result = evaluate_checkpoint(plan.base_model, plan, progress=False)["kit food set"]
    figures["before"] = {"new_mc_test": _mc(result, "new"), "base_mc_test": _mc(result, "base"),
                         "new_open_test": result.accuracy(group="new", split="test", kind="open"),
                         "base_open_test": result.accuracy(group="base", split="test", kind="open"),
                         "new_mc_ood": _mc(result, "new", "ood"), "base_mc_ood": _mc(result, "base", "ood")}
    return result


@pytest.fixture(scope="module")
def after(plan, figures, tmp_path_factory):
    return _finetune_and_evaluate(plan, tmp_path_factory.mktemp("runs"), figures, "uninterrupted")


@pytest.fixture(scope="module")
def resumed(plan, figures, tmp_path_factory, after):
    total = after[0].info()["total_iters"]
    return _finetune_and_evaluate(plan, tmp_path_factory.mktemp("runs"), figures, "interrupted_and_resumed",
                                  interrupt_at=total // 2)


def test_before_the_model_does_not_know_the_new_dishes(before):
    assert _mc(before, "new") <= 0.40
    assert before.accuracy(group="new", split="test", kind="open") <= 0.10


def test_after_the_fine_tune_it_does(after):
    _, result = after
    assert _mc(result, "new") >= 0.85


def test_base_dishes_drop_by_at_most_5_points(before, after):
    _, result = after
    assert _mc(result, "base") >= _mc(before, "base") - 0.05


def test_an_interrupted_and_resumed_run_reaches_the_same_accuracy(after, resumed):
    run, result = resumed
    assert run.info()["resumed_from"] is not None and run.finished
    # Not bit-identical: mmengine restores weights, optimizer, schedule and data order, not the LoRA dropout's
    # random state. Measured: 90.6% uninterrupted, 87.5% resumed (3 of 96 questions).
    assert abs(_mc(result, "new") - _mc(after[1], "new")) <= 0.05
    assert _mc(result, "new") >= 0.85
