"""The fine-tuning lesson's plan, end to end, in either mode: plan the data, train with XTuner, convert, evaluate.

Tiny mode: the course model (the tiny model pre-trained on the base dishes) is the "before" model; LoRA teaches it
the new dishes from the kit's food set; evaluation covers new and base dishes and the out-of-style (Noto) images.

Real mode: InternVL2-2B is the "before" model. By default it is fine-tuned on the kit's food set too (its
licence allows training) and evaluated on that set and on FoodieQA, which is an evaluation set (CC BY-NC-ND,
"evaluation only"). Training on FoodieQA, as the seed lesson did, needs acknowledge_foodieqa_licence=True;
then its images are split so that training and test never share one.
"""

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

from course_lib import foodieqa
from course_lib.course_model import lesson_model
from course_lib.evaluation import evaluate_cached
from course_lib.kit_food_set import ensure_food_vqa
from course_lib.vqa_data import load_eval_records

from .convert import convert_checkpoint
from .runner import TrainRun, new_run, train
from .xtuner_config import render


@dataclass
class FinetunePlan:
    mode: str  # tiny | real
    profile: str  # the XTuner config profile
    base_model: Path
    train_json: Path
    image_folder: Path
    eval_records: Dict[str, List[dict]]  # eval set name -> records (image paths relative to its root)
    eval_roots: Dict[str, Path]
    dishes: List[dict]
    cache: Path  # the setup's cache folder: runs, conversions and evaluations are kept there
    notes: List[str] = field(default_factory=list)
    acknowledge_foodieqa_licence: bool = False  # set by plan_finetune(train_on="foodieqa", acknowledge...=True)

    def describe(self) -> str:
        lines = [
            f"{self.mode} mode: fine-tune {self.base_model}",
            f"  training data: {self.train_json}",
            f"  images from:   {self.image_folder}",
        ]
        lines += [f"  evaluate on:   {name} ({len(records)} questions)" for name, records in self.eval_records.items()]
        return "\n".join(lines + [f"  note: {note}" for note in self.notes])


KIT_SET_LINK = "food_vqa-current"  # in the cache: the committed real config's default data path goes through it
PROBES = "probes"  # the name of the probes' evaluation set in a plan


def linked_food_set(cache: Path, log=print) -> Path:
    """The kit's food set in the cache folder (built on first use), also reachable as <cache>/food_vqa-current,
    the path the committed GPU config (configs/internvl2_2b_food_lora.py) trains on by default."""
    data = ensure_food_vqa(cache, log=log)
    link = Path(cache) / KIT_SET_LINK
    if not (link.is_symlink() and link.resolve() == data.resolve()):
        if link.exists() and not link.is_symlink():
            raise FileExistsError(f"{link} exists and is not the kit's link to its food set; move it away")
        fresh = link.with_name(f".{KIT_SET_LINK}-{os.getpid()}")
        fresh.unlink(missing_ok=True)
        fresh.symlink_to(data.name)  # relative: the cache folder can move
        os.replace(fresh, link)
    return data


def runs_root(cache: Path) -> Path:
    return Path(cache) / "runs"


def evaluations_dir(cache: Path) -> Path:
    """Where evaluation results are kept (course_lib.evaluation.evaluate_cached)."""
    return Path(cache) / "evaluations"


def converted_dir(run: TrainRun, cache: Path) -> Path:
    return Path(cache) / "converted" / run.work_dir.name


def kit_set(data: Path) -> dict:
    """The kit food set's dish table and its evaluation records: the food questions (held-out test and
    out-of-style pictures) and the general-ability and hallucination probes (course_lib.probes)."""
    return {
        "dishes": json.loads((data / "dishes.json").read_text(encoding="utf-8")),
        "eval": {
            "kit food set": load_eval_records(data / "eval" / "test.json", data)
            + load_eval_records(data / "eval" / "ood.json", data),
            PROBES: load_eval_records(data / "eval" / "probe.json", data),
        },
    }


def plan_finetune(setup, train_on: str = "kit", acknowledge_foodieqa_licence: bool = False, log=print) -> FinetunePlan:
    """What the lesson trains and evaluates on this machine."""
    kit_data = linked_food_set(setup.cache, log=log)
    kit = kit_set(kit_data)
    if setup.is_tiny:
        if train_on != "kit":
            raise ValueError("tiny mode trains on the kit's food set; FoodieQA needs real mode (a GPU and the release)")
        return FinetunePlan(
            "tiny",
            "tiny",
            lesson_model(setup, log=log),
            kit_data / "xtuner" / "finetune_new.json",
            kit_data,
            kit["eval"],
            {"kit food set": kit_data, PROBES: kit_data},
            kit["dishes"],
            setup.cache,
        )

    eval_records, eval_roots, notes = dict(kit["eval"]), {"kit food set": kit_data, PROBES: kit_data}, []
    foodie = setup.data_path
    if foodie is None or not foodie.exists():
        notes.append("no FoodieQA folder (COURSE_DATA_PATH): evaluating on the kit's food set only")
        foodie_records = []
    else:
        foodie_records = foodieqa.load_sivqa(foodie, log=log)
    if train_on == "kit":
        train_json, image_folder = kit_data / "xtuner" / "finetune_new.json", kit_data
        if foodie_records:
            eval_records["FoodieQA"], eval_roots["FoodieQA"] = foodie_records, foodie
    elif train_on == "foodieqa":
        if not foodie_records:
            raise FileNotFoundError("training on FoodieQA needs its release folder: set COURSE_DATA_PATH")
        train_records, test_records = foodieqa.split_by_image(foodie_records, test_fraction=0.2, seed=0)
        train_json = _foodieqa_training_json(
            foodie, {r["image"] for r in test_records}, acknowledge_foodieqa_licence, setup.cache, log
        )
        image_folder = foodie
        eval_records["FoodieQA (held-out images)"], eval_roots["FoodieQA (held-out images)"] = test_records, foodie
        notes.append("trained on FoodieQA by explicit acknowledgment of its evaluation-only licence")
    else:
        raise ValueError(f"train_on must be 'kit' or 'foodieqa', got {train_on!r}")
    return FinetunePlan(
        "real",
        "real",
        lesson_model(setup),
        train_json,
        image_folder,
        eval_records,
        eval_roots,
        kit["dishes"],
        setup.cache,
        notes,
        acknowledge_foodieqa_licence=train_on == "foodieqa",
    )


def _foodieqa_training_json(folder: Path, test_images: set, acknowledged: bool, cache: Path, log) -> Path:
    """FoodieQA in the seed lesson's training format, without the held-out test images."""
    out = Path(cache) / "foodieqa" / "train_xtuner.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    everything = out.with_name("all_xtuner.json")
    foodieqa.to_xtuner_training(folder, everything, acknowledge_licence=acknowledged, overwrite=True, log=log)
    records = [r for r in json.loads(everything.read_text(encoding="utf-8")) if r["image"] not in test_images]
    out.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    return out


def start_finetune(plan: FinetunePlan, name: str = "food-lora", runs: Optional[Path] = None) -> TrainRun:
    """A new run of the plan; new_run checks every training record first (fields, <image> tags, images)."""
    return new_run(
        name,
        plan.profile,
        plan.base_model,
        plan.train_json,
        plan.image_folder,
        runs or runs_root(plan.cache),
        acknowledge_foodieqa_licence=plan.acknowledge_foodieqa_licence,
    )


def finished_runs(runs: Path, name: str = "food-lora") -> List[TrainRun]:
    """The finished runs called name-NNN in the folder runs, oldest first."""
    root = Path(runs)
    candidates = sorted(root.glob(f"{name}-[0-9][0-9][0-9]")) if root.is_dir() else []
    return [run for run in (TrainRun(path) for path in candidates) if run.info_file.exists() and run.finished]


def finished_run_for(plan: FinetunePlan, name: str = "food-lora", runs: Optional[Path] = None) -> Optional[TrainRun]:
    """The newest finished run that trained this plan's model on its data with today's config, if any."""
    wanted = {
        "model_path": str(Path(plan.base_model).resolve()),
        "train_json": str(Path(plan.train_json).resolve()),
        "image_folder": str(Path(plan.image_folder).resolve()),
    }
    for run in reversed(finished_runs(runs or runs_root(plan.cache), name)):
        info = run.info()
        # A run whose pictures were normalised trains on its own copy of the records (finetune.data_check).
        expected = render(plan.profile, **{**wanted, "train_json": info.get("trained_on", wanted["train_json"])})
        if (
            all(info.get(key) == value for key, value in wanted.items())
            and info.get("profile") == plan.profile
            and _without_resume(run.config.read_text(encoding="utf-8")) == _without_resume(expected)
        ):
            return run
    return None


def _without_resume(config_text: str) -> str:
    return "\n".join(line for line in config_text.splitlines() if not line.startswith(("load_from = ", "resume = ")))


def ensure_finetuned(plan: FinetunePlan, name: str = "food-lora", log=print) -> Path:
    """The converted checkpoint of the newest finished run for this plan; fine-tunes and converts if none."""
    run = finished_run_for(plan, name)
    if run is not None:
        log(f"Using the finished run {run.work_dir.name}")
    else:
        log("No finished fine-tune for this plan yet: training one now (the fine-tuning lesson does the same)")
        run = start_finetune(plan, name)
        train(run)
    return converted(run, plan, log=log)


def converted(run: TrainRun, plan: FinetunePlan, log=print) -> Path:
    """The run's converted checkpoint in the cache, converting its final checkpoint the first time."""
    out = converted_dir(run, plan.cache)
    if not (out / "conversion.json").is_file():
        convert_checkpoint(run, out, log=log)
    return out


def evaluate_checkpoint(
    path: Path, plan: FinetunePlan, device: str = "cpu", progress: bool = True, batch_size: int = 8, reuse: bool = True
):
    """{eval set name: EvalResult} for one checkpoint folder on the plan's evaluation sets, each kept in the
    cache (course_lib.evaluation.evaluate_cached): asking again reads the result; reuse=False always answers."""
    sets = {name: (records, plan.eval_roots[name]) for name, records in plan.eval_records.items()}
    return evaluate_cached(
        path,
        sets,
        plan.dishes,
        evaluations_dir(plan.cache),
        device=device,
        progress=progress,
        batch_size=batch_size,
        reuse=reuse,
    )
