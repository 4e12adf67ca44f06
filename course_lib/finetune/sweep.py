"""Lesson 11's sweep: what the fine-tune's settings trade, new dishes against what the model could do before.

The lecture's advice is to tune the training mix and the settings so that the model gains food skill without
losing its general ability (调参数均衡通用性能与美食性能), and to replay old data against forgetting. A Setting
changes four knobs of the tiny fine-tune, each from the lesson's own run:

* replay_share: the share of the training mix that is base-dish questions the course model was pre-trained on
  (the lesson's run: kit_food_set.SPEC["replay_fraction"]);
* general_share: the share that is general questions the course model was pre-trained on, of the probes' kinds:
  yes/no about base dishes and the shapes' colour and count, on training pictures (never the held-out pictures
  the probes ask about). The lesson's run replays none;
* epochs and lora_r (LoRA's rank; alpha follows it, alpha = 2 r): xtuner_config.RUN_SETTINGS.

The rest of the mix is the new dishes' training records, the same in every setting. Every setting is a real XTuner
run (runner.new_run, train), converted and scored by plan.evaluate_checkpoint, so a sweep row and lesson 11's own
before/after figures come from one code path. benchmarks/finetune_sweep.py runs GRID and writes the table that
ships with the kit (assets/finetune_sweep.json); lesson 11 plots it, and a student adds a setting of their own.
"""

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import List, Optional, Sequence

from ..config import REPO_ROOT
from ..i18n import later, tr
from ..kit_food_set.records import replay, shuffled
from ..kit_food_set.spec import SPEC
from ..tables import Table
from ..tables import percent as _percent
from .plan import (
    PROBES,
    FinetunePlan,
    converted,
    evaluate_checkpoint,
    finished_run_for,
    runs_root,
    start_finetune,
)
from .runner import TrainRun, new_run, train
from .xtuner_config import PROFILES, profile_settings

SHIPPED = REPO_ROOT / "assets" / "finetune_sweep.json"
FORMAT = "course_lib.finetune.sweep/1"


@dataclass(frozen=True)
class Setting:
    replay_share: float = SPEC["replay_fraction"]
    general_share: float = 0.0
    epochs: int = PROFILES["tiny"]["max_epochs"]
    lora_r: int = PROFILES["tiny"]["lora_r"]

    def __post_init__(self):
        for knob in ("replay_share", "general_share"):
            share = getattr(self, knob)
            if not 0 <= share < 1:
                raise ValueError(f"{knob} is a share of the training mix: 0 or more and under 1, got {share!r}")
        if round(self.replay_share + self.general_share, 9) > 0.9:
            raise ValueError(
                f"replay_share + general_share = {self.replay_share + self.general_share:.2f}: leave at least 10% "
                "of the mix to the new dishes"
            )
        profile_settings("tiny", self.run_settings())  # epochs and rank: whole numbers of 1 or more

    def run_settings(self) -> dict:
        """The XTuner config settings of this setting (new_run(settings=...), xtuner_config.RUN_SETTINGS)."""
        return {"max_epochs": self.epochs, "lora_r": self.lora_r}

    @classmethod
    def of(cls, row: dict) -> "Setting":
        """The setting a sweep row was measured at."""
        return cls(**{knob: row[knob] for knob in asdict(DEFAULT)})

    def _turned(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v != getattr(DEFAULT, k)}

    @property
    def name(self) -> str:
        """A folder-safe name: replay40-general0-epochs3-r128."""
        return (
            f"replay{round(100 * self.replay_share)}-general{round(100 * self.general_share)}"
            f"-epochs{self.epochs}-r{self.lora_r}"
        )

    def changed(self) -> str:
        """What differs from the lesson's run, in words ("the lesson's run" for DEFAULT)."""
        words = {
            "replay_share": lambda v: f"replay {round(100 * v)}%",
            "general_share": lambda v: f"general {round(100 * v)}%",
            "epochs": lambda v: f"{v} epoch{'s' if v > 1 else ''}",
            "lora_r": lambda v: f"r={v}",
        }
        return ", ".join(words[k](v) for k, v in self._turned().items()) or "the lesson's run"

    def knob(self) -> str:
        """The knob this setting turns (for a plot's markers): one name, "several", or "none"."""
        turned = list(self._turned())
        return turned[0] if len(turned) == 1 else ("none" if not turned else "several")


DEFAULT = Setting()
# One knob at a time from the lesson's run, general replay first (the knob the lesson is about): 2,584 training
# iterations besides the lesson's run, about 25 minutes on 2 idle CPU cores.
GRID = [
    DEFAULT,
    Setting(general_share=0.2),
    Setting(replay_share=0.0),
    Setting(epochs=1),
    Setting(lora_r=8),
    Setting(replay_share=0.2),
    Setting(general_share=0.1),
]


def _read(path: Path) -> list:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def training_records(plan: FinetunePlan, setting: Setting) -> list:
    """The setting's training mix, from the food set's own files: every new-dish record of the lesson's run, plus
    base-dish and general records of the course model's pre-training, in the setting's shares."""
    folder = Path(plan.image_folder)
    new = [r for r in _read(plan.train_json) if r.get("group") == "new"]
    pretrain = _read(folder / "xtuner" / "pretrain_base.json")
    base = [r for r in pretrain if r.get("group") == "base" and r.get("kind") in ("mc", "open")]
    # The probes' kinds in turn: a yes/no conversation about a base dish, then a shapes one (colour and count).
    yes_no = shuffled([r for r in pretrain if (r.get("kind"), r.get("group")) == ("yesno", "base")], "general")
    shapes = shuffled([r for r in pretrain if r.get("kind") == "shapes"], "general")
    general = [r for pair in zip(yes_no, shapes) for r in pair] + yes_no[len(shapes) :]
    total = len(new) / (1 - setting.replay_share - setting.general_share)
    wanted = {"base": round(total * setting.replay_share), "general": round(total * setting.general_share)}
    for part, pool in (("base", base), ("general", general)):
        if wanted[part] > len(pool):
            raise ValueError(
                f"{setting.name} needs {wanted[part]} {part} records; the food set has {len(pool)}: lower the share"
            )
    chosen = new + replay(base, wanted["base"]) + general[: wanted["general"]]
    return shuffled(chosen, "sweep", setting.name)


def is_lessons_run(setting: Setting) -> bool:
    return setting == DEFAULT


def training_file(plan: FinetunePlan, setting: Setting) -> Path:
    """The setting's training records on disk: the lesson's own file for DEFAULT, else one per setting and food set
    in the cache (written only when missing: the same setting of the same food set always draws the same records)."""
    if is_lessons_run(setting):
        return Path(plan.train_json)
    path = Path(plan.cache) / "sweep" / Path(plan.image_folder).name / f"{setting.name}.json"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".json.partial")
        partial.write_text(json.dumps(training_records(plan, setting), ensure_ascii=False), encoding="utf-8")
        partial.replace(path)
    return path


def sweep_run(plan: FinetunePlan, setting: Setting, runs: Optional[Path] = None) -> TrainRun:
    """The setting's run: the lesson's own for DEFAULT (made by lesson 10, or now); else the newest run named
    sweep-<setting> of this model, data and settings (finished, or interrupted: train() resumes it), or a new one."""
    runs = Path(runs or runs_root(plan.cache))
    if is_lessons_run(setting):
        return finished_run_for(plan, runs=runs) or start_finetune(plan, runs=runs)
    name, data = f"sweep-{setting.name}", training_file(plan, setting)
    settings = {k: v for k, v in setting.run_settings().items() if v != PROFILES[plan.profile][k]}
    wanted = {"model_path": str(Path(plan.base_model).resolve()), "train_json": str(data.resolve())}
    for path in sorted(runs.glob(f"{name}-[0-9][0-9][0-9]"), reverse=True):
        info = TrainRun(path).info() if (path / "run.json").is_file() else {}
        if all(info.get(k) == v for k, v in wanted.items()) and info.get("settings", {}) == settings:
            return TrainRun(path)
    return new_run(name, plan.profile, plan.base_model, data, plan.image_folder, runs, settings=settings)


def measure(plan: FinetunePlan, setting: Setting, device: str = "cpu", progress: bool = True, log=print) -> dict:
    """Train (or resume, or reuse) the setting's run, convert it, score it on the plan's evaluation sets: a row."""
    if plan.mode != "tiny":
        raise ValueError("the sweep trains the tiny model on the CPU recipe: run it in tiny mode (COURSE_MODE=tiny)")
    run = sweep_run(plan, setting)
    train(run, progress=progress)
    results = evaluate_checkpoint(converted(run, plan, log=log), plan, device, progress=progress)
    return row(setting, results, run)


ITERATION_TIME = re.compile(r"Iter\(train\) \[\s*(\d+)/\d+\].*?\btime: ([0-9.]+)")


def training_minutes(run: TrainRun) -> float:
    """The run's training time, the sum of the seconds mmengine logged for each iteration (resumed parts
    included, each iteration once): what a student waits for, without start-up and checkpoint saving."""
    seconds = {}
    for match in ITERATION_TIME.finditer(run.log_file.read_text(encoding="utf-8") if run.log_file.exists() else ""):
        seconds[int(match.group(1))] = float(match.group(2))
    return sum(seconds.values()) / 60


def row(setting: Setting, results: dict, run: Optional[TrainRun] = None) -> dict:
    """A sweep row: the setting, and its held-out figures (shares of 1)."""
    food, probes = results["kit food set"], results[PROBES]
    return {
        **asdict(setting),
        "name": setting.name,
        "changed": setting.changed(),
        "records": len(_read(run.info()["train_json"])) if run is not None else None,
        "iterations": run.info().get("total_iters") if run is not None else None,
        "train_minutes": round(training_minutes(run), 2) if run is not None else None,
        "new_dishes": food.accuracy(group="new", split="test"),
        "base_dishes": food.accuracy(group="base", split="test"),
        "new_dishes_other_style": food.accuracy(group="new", split="ood"),
        "yes_no_base": probes.accuracy(group="base", kind="yesno"),
        "yes_no_new": probes.accuracy(group="new", kind="yesno"),
        "colour": probes.accuracy(kind="colour"),
        "count": probes.accuracy(kind="count"),
        "probes_unparsed": probes.stats()["unparsed_rate"],
    }


def before_row(results: dict) -> dict:
    """The course model itself (no fine-tune) as a row, for the plot's reference point."""
    unset = {knob: None for knob in asdict(DEFAULT)}
    return {**row(DEFAULT, results), **unset, "name": "before", "changed": "before the fine-tune"}


FIGURES = [
    ("new_dishes", "new"),
    ("base_dishes", "base"),
    ("yes_no_base", "yes/no base"),
    ("yes_no_new", "yes/no new"),
    ("colour", "colour"),
    ("count", "count"),
    ("probes_unparsed", "probes unparsed"),
]


def table(rows: Sequence[dict], title: str = "") -> Table:
    """The rows as a text table: accuracy in % on held-out pictures, and training iterations (the cost: about half
    a second each on a laptop CPU; the minutes logged on a busy machine are in the rows, not shown)."""
    columns = [("iterations", lambda r: r["iterations"] if r.get("iterations") is not None else "-")]
    columns += [(header, (lambda key: lambda r: _percent(r[key]))(key)) for key, header in FIGURES]
    return Table({r["changed"]: r for r in rows}, columns, title)


def markdown_table(data: dict) -> str:
    """The table as the README shows it (tests/test_sweep.py keeps the two equal)."""
    keys = ["new_dishes", "base_dishes", "yes_no_base", "colour", "probes_unparsed"]
    lines = [
        "| setting | iterations | new dishes | base dishes | yes/no, base | shapes: colour | probe answers unparsed |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in [data["before"], *data["rows"]]:
        figures = " | ".join(_percent(r[key]) for key in keys)
        lines.append(f"| {r['changed']} | {r['iterations'] if r.get('iterations') is not None else '-'} | {figures} |")
    return "\n".join(lines) + "\n"


def save(rows: Sequence[dict], before: dict, path: Path = SHIPPED, about: Optional[dict] = None) -> Path:
    """Write the table (JSON: the rows, the before row and what they were measured with), replacing path."""
    data = {"format": FORMAT, **(about or {}), "before": before, "rows": list(rows)}
    partial = Path(path).with_suffix(".partial")
    partial.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    partial.replace(path)
    return Path(path)


def load(path: Path = SHIPPED) -> dict:
    """The sweep table (the shipped one by default): {"before", "rows", and what they were measured with}."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if data.get("format") != FORMAT:
        raise ValueError(f"{path} is not a sweep table of this kit ({FORMAT}); regenerate it: make sweep")
    return data


def _setting_words(row: dict) -> str:
    """row["changed"] (Setting.changed) in the lesson's language, for the plot's legend."""
    words = {
        "replay_share": lambda v: tr("replay {share}%", share=round(100 * v)),
        "general_share": lambda v: tr("general {share}%", share=round(100 * v)),
        "epochs": lambda v: tr("{n} epochs", n=v) if v > 1 else tr("{n} epoch", n=v),
        "lora_r": lambda v: f"r={v}",
    }
    turned = Setting.of(row)._turned()
    return ", ".join(words[k](v) for k, v in turned.items()) or tr("the lesson's run")


def plot_sweep(data: dict, yours: Optional[List[dict]] = None):
    """New-dish accuracy against the three things a fine-tune can lose: base dishes, the shapes' colour and
    yes/no about base dishes. One point per setting (its marker says the knob it turns), a dashed line where the
    course model stood before the fine-tune, your own rows as black crosses; the legend names every point."""
    import matplotlib.pyplot as plt

    markers = {"none": "o", "replay_share": "s", "general_share": "D", "epochs": "^", "lora_r": "v", "several": "P"}
    panels = [
        ("base_dishes", later("base dishes (replayed)")),
        ("colour", later("shapes: colour")),
        ("yes_no_base", later("yes/no, base")),
    ]
    rows, yours = list(data["rows"]), list(yours or [])
    lowest = min(r["new_dishes"] for r in rows + yours)
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.6), sharey=True)
    colours = plt.get_cmap("tab10").colors
    for ax, (key, panel) in zip(axes, panels):
        title = tr(panel)
        ax.axvline(100 * data["before"][key], color="0.5", linestyle="--", linewidth=1)
        ax.text(100 * data["before"][key], 101, " " + tr("before"), color="0.4", fontsize=8, va="bottom")
        for index, r in enumerate(rows):
            knob = Setting.of(r).knob()
            ax.scatter(
                100 * r[key],
                100 * r["new_dishes"],
                marker=markers[knob],
                s=55,
                zorder=3,
                color=colours[index % len(colours)],
                label=_setting_words(r),
                edgecolors="white",
                linewidths=0.5,
            )
        for r in yours:
            ax.scatter(
                100 * r[key],
                100 * r["new_dishes"],
                marker="X",
                s=110,
                color="black",
                zorder=4,
                label=tr("yours: {setting}", setting=_setting_words(r)),
            )
        ax.set_xlim(-3, 103)
        ax.set_ylim(max(0, 100 * lowest - 10), 105)
        ax.set_xlabel(tr("{panel}: accuracy %", panel=title))
        ax.set_title(tr("new dishes vs {panel}", panel=title), fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(tr("new dishes (held-out pictures): accuracy %"))
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 5), fontsize=8.5, frameon=False)
    fig.suptitle(
        tr("What each setting learnt (up) and kept (right); the dashed line: the course model before"), fontsize=11
    )
    fig.tight_layout(rect=(0, 0.1 if len(labels) <= 5 else 0.13, 1, 1))
    return fig
