"""Lesson 11's sweep (course_lib.finetune.sweep): the settings, the training mix each one trains on, a run's own
settings in its XTuner config, and the table that ships with the kit (assets/finetune_sweep.json), which must be
the one today's course model and food set would give (`make sweep` regenerates it)."""

import json
from collections import Counter

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from conftest import REPO_ROOT  # noqa: E402

from course_lib.config import resolve  # noqa: E402
from course_lib.finetune import runner, sweep, xtuner_config  # noqa: E402
from course_lib.finetune.plan import plan_finetune  # noqa: E402
from course_lib.kit_food_set.spec import SPEC  # noqa: E402


@pytest.fixture(scope="module")
def plan():
    return plan_finetune(resolve(env={"COURSE_MODE": "tiny"}, has_cuda=False), log=lambda *_: None)


def test_the_default_setting_is_the_lessons_run():
    assert sweep.DEFAULT == sweep.Setting(SPEC["replay_fraction"], 0.0, 3, 128)
    assert xtuner_config.PROFILES["tiny"]["max_epochs"] == sweep.DEFAULT.epochs
    assert sweep.DEFAULT.changed() == "the lesson's run" and sweep.DEFAULT.knob() == "none"
    mixed = sweep.Setting(general_share=0.2, epochs=1)
    assert mixed.changed() == "general 20%, 1 epoch" and mixed.knob() == "several"
    assert mixed.name == "replay40-general20-epochs1-r128"
    assert len({s.name for s in sweep.GRID}) == len(sweep.GRID)


@pytest.mark.parametrize(
    "knobs, message",
    [
        ({"replay_share": -0.1}, "share of the training mix"),
        ({"general_share": 1.0}, "share of the training mix"),
        ({"replay_share": 0.6, "general_share": 0.35}, "at least 10%"),
        ({"epochs": 0}, "whole number"),
        ({"lora_r": 2.5}, "whole number"),
        ({"lora_r": True}, "whole number"),
    ],
)
def test_a_setting_out_of_range_is_refused_with_what_to_do(knobs, message):
    with pytest.raises(ValueError, match=message):
        sweep.Setting(**knobs)


def test_each_setting_trains_on_the_new_dishes_plus_its_shares_and_never_a_held_out_picture(plan):
    lessons = json.loads(plan.train_json.read_text(encoding="utf-8"))
    new = sorted(r["id"] for r in lessons if r["group"] == "new")
    for setting in [*sweep.GRID[1:], sweep.Setting(replay_share=0.3, general_share=0.3)]:
        records = sweep.training_records(plan, setting)
        assert sorted(r["id"] for r in records if r.get("group") == "new") == new, setting
        kinds = Counter(
            "general" if r["kind"] in ("yesno", "shapes") else r["group"] for r in records if r.get("group") != "new"
        )
        assert kinds["base"] == pytest.approx(len(records) * setting.replay_share, abs=1), setting
        assert kinds["general"] == pytest.approx(len(records) * setting.general_share, abs=1), setting
        assert all("/train/" in r["image"] for r in records), "a held-out picture in the training mix"
        assert not any(r.get("unknown") for r in records), "the pre-training's 'I do not know' answers"
        assert records == sweep.training_records(plan, setting), "the same setting must draw the same records"
    general = [r for r in sweep.training_records(plan, sweep.Setting(general_share=0.2)) if r["kind"] != "mc"]
    assert Counter(r["kind"] for r in general if r["kind"] in ("yesno", "shapes")) == {"yesno": 96, "shapes": 96}
    with pytest.raises(ValueError, match="lower the share"):
        sweep.training_records(plan, sweep.Setting(replay_share=0.85))


def test_the_lessons_setting_trains_on_the_lessons_file(plan):
    assert sweep.training_file(plan, sweep.DEFAULT) == plan.train_json


def test_a_runs_own_settings_reach_its_xtuner_config(plan, tmp_path):
    text = xtuner_config.render("tiny", settings={"max_epochs": 1, "lora_r": 8})
    assert "max_epochs = 1\n" in text and "r=8, lora_alpha=16," in text
    assert xtuner_config.render("tiny") == xtuner_config.config_path("tiny").read_text(encoding="utf-8")
    with pytest.raises(ValueError, match="only max_epochs, lora_r"):
        xtuner_config.render("tiny", settings={"lr": 1})
    with pytest.raises(ValueError, match="whole number"):
        xtuner_config.render("tiny", settings={"max_epochs": 0})
    run = runner.new_run(
        "settings", "tiny", plan.base_model, plan.train_json, plan.image_folder, tmp_path, settings={"lora_r": 8}
    )
    assert run.info()["settings"] == {"lora_r": 8} and "r=8, lora_alpha=16," in run.config.read_text()
    with pytest.raises(ValueError, match="only max_epochs, lora_r"):
        runner.new_run("bad", "tiny", plan.base_model, plan.train_json, plan.image_folder, tmp_path, settings={"x": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["settings-001"], "a refused run leaves no folder"


def test_training_minutes_add_up_each_logged_iteration_once(tmp_path):
    run = runner.TrainRun(tmp_path)
    line = "12/07 02:52:48 - mmengine - INFO - Iter(train) [{i:3d}/3]  lr: 5.0e-09  eta: 0:05:24  time: {t}  loss: 9.7"
    lines = [line.format(i=1, t="30.0"), line.format(i=2, t="60.0"), line.format(i=2, t="30.0"), line.format(i=3, t=60)]
    run.log_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert sweep.training_minutes(run) == pytest.approx(2.0)  # iteration 2 was logged again after a resume


# ---- the shipped table ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def shipped():
    return sweep.load()


def test_the_shipped_table_is_todays(shipped, plan):
    from course_lib.course_model import recipe_hash

    assert shipped.get("complete") is True, "the shipped sweep was stopped part-way: make sweep"
    assert [r["name"] for r in shipped["rows"]] == [s.name for s in sweep.GRID], "GRID changed: make sweep"
    assert shipped["course_model_recipe"] == recipe_hash(), "the course model changed since the sweep: make sweep"
    assert shipped["food_set"] == plan.image_folder.name, "the food set changed since the sweep: make sweep"


def test_the_sweep_shows_what_lesson_11_says_it_shows(shipped):
    """Lesson 11's three sentences about the sweep (cell 11-09l; its recap and TEACHING.md say the same)."""
    rows = {sweep.Setting.of(r): r for r in shipped["rows"]}
    before, lesson = shipped["before"], rows[sweep.DEFAULT]
    # Without replay the base dishes are forgotten almost entirely; replay keeps them, and not the probes.
    assert rows[sweep.Setting(replay_share=0.0)]["base_dishes"] < 0.1
    assert rows[sweep.Setting(replay_share=0.2)]["base_dishes"] < lesson["base_dishes"] - 0.05
    assert lesson["base_dishes"] >= before["base_dishes"] - 0.05
    for setting in (sweep.Setting(replay_share=0.0), sweep.Setting(replay_share=0.2), sweep.DEFAULT):
        assert rows[setting]["colour"] < before["colour"] - 0.3, setting
        assert rows[setting]["yes_no_base"] < before["yes_no_base"] - 0.3, setting
    # Training less or with a smaller update forgets less of everything and learns fewer new dishes.
    for setting in (sweep.Setting(epochs=1), sweep.Setting(lora_r=8)):
        row = rows[setting]
        assert row["new_dishes"] < lesson["new_dishes"] - 0.05, setting
        assert row["colour"] > lesson["colour"] + 0.05 and row["yes_no_base"] > lesson["yes_no_base"] + 0.1, setting
    # General replay keeps the probes and the new dishes together.
    for setting in (sweep.Setting(general_share=0.1), sweep.Setting(general_share=0.2)):
        row = rows[setting]
        assert row["colour"] > lesson["colour"] + 0.3 and row["yes_no_base"] > lesson["yes_no_base"] + 0.3, setting
        assert row["new_dishes"] >= lesson["new_dishes"] - 0.02, setting
        assert row["base_dishes"] >= lesson["base_dishes"] - 0.02, setting


def test_plot_sweep_places_every_row_and_yours(shipped, tmp_path):
    fig = sweep.plot_sweep(shipped, yours=[shipped["rows"][0]])
    assert len(fig.axes) == 3 and len(fig.legends[0].get_texts()) == len(shipped["rows"]) + 1
    for ax in fig.axes:
        assert len(ax.collections) == len(shipped["rows"]) + 1  # the rows and yours
        assert len(ax.lines) == 1  # where the course model stood before the fine-tune
    fig.savefig(tmp_path / "sweep.png")
    plt.close(fig)
    assert (REPO_ROOT / "assets" / "finetune_sweep.json") == sweep.SHIPPED


def test_the_readme_shows_the_shipped_table(shipped):
    assert sweep.markdown_table(shipped) in (REPO_ROOT / "README.md").read_text(encoding="utf-8"), (
        "README.md's sweep table differs from assets/finetune_sweep.json: paste what make sweep prints"
    )


def test_a_settings_run_is_reused_only_for_the_same_model_data_and_settings(plan, tmp_path, tiny_path):
    from dataclasses import replace

    mine = replace(plan, cache=tmp_path)
    setting = sweep.Setting(lora_r=8)
    run = sweep.sweep_run(mine, setting)
    assert run.info()["settings"] == {"lora_r": 8} and run.info()["train_json"].startswith(str(tmp_path))
    assert sweep.sweep_run(mine, setting).work_dir == run.work_dir, "an unfinished run is resumed, not started anew"
    other = sweep.sweep_run(replace(mine, base_model=tiny_path), setting)
    assert other.work_dir != run.work_dir, "a run of another model must not stand for this one"
    assert sweep.sweep_run(mine, setting).work_dir == run.work_dir
