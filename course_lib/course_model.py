"""The course model: the tiny InternVL2 that every tiny-mode lesson, the demo and the benchmarks talk to.

It is the tiny checkpoint (course_lib.tiny_internvl2, random weights) after the kit's pre-training recipe
(course_lib.finetune.pretrain): it names the 12 base dishes of the kit's food set, answers a follow-up about
their cuisine, and says "I do not know this dish" about the 6 new ones, which the fine-tuning lesson teaches.

The recipe takes about 16 minutes on 2 CPU cores, so the built weights ship in assets/course-model (about
9 MB): `make course` is ready in minutes. assets/course-model/course_model.json holds the recipe hash the
weights were built from: a hash of the pre-training recipe, of the tiny model's sources and of the food set's
sources. When those sources change, the shipped copy no longer counts (a test fails until it is rebuilt) and
ensure_course_model() builds the model for the current sources in the cache instead, with progress bars.
`make course-model` (rebuild()) runs the whole recipe again, reports whether the result is bit-identical to
the shipped weights, and with --publish copies it into assets/.
"""
import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Dict, List, Optional

from .config import REPO_ROOT

SHIPPED_DIR = REPO_ROOT / "assets" / "course-model"
INFO_FILE = "course_model.json"
LICENCE_FILES = ("LICENSE", "README.md")  # written by hand, kept when the weights are republished


def recipe_hash() -> str:
    """The hash of everything the course model is built from (no build needed to know it)."""
    from .finetune.pretrain import food_base_dir
    from .food_vqa import food_vqa_dir
    from .tiny_internvl2 import checkpoint_dir

    here = Path(".")
    return food_base_dir(here, checkpoint_dir(here), food_vqa_dir(here)).name.rsplit("-", 1)[1]


def shipped_hash(path: Path = SHIPPED_DIR) -> Optional[str]:
    try:
        return json.loads((Path(path) / INFO_FILE).read_text(encoding="utf-8"))["recipe_hash"]
    except (OSError, ValueError, KeyError):
        return None


def shipped_is_current(path: Path = SHIPPED_DIR) -> bool:
    return shipped_hash(path) == recipe_hash() and (Path(path) / "model.safetensors").is_file()


def ensure_course_model(cache: Path, log=print, progress: bool = True) -> Path:
    """The course model's folder: the shipped one, or (sources changed since it was built) one built in cache."""
    if shipped_is_current():
        return SHIPPED_DIR
    from .finetune.pretrain import ensure_food_base_checkpoint

    log(f"assets/course-model was built from other sources (recipe {shipped_hash()}, these sources: {recipe_hash()}); "
        "using the course model built for these sources in the cache (about 16 CPU minutes the first time; "
        "`make course-model PUBLISH=1` refreshes the shipped copy)")
    return ensure_food_base_checkpoint(cache, log=log, progress=progress)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weight_differences(a: Path, b: Path) -> Dict[str, float]:
    """Largest absolute difference per tensor between two checkpoints' model.safetensors (0 for equal)."""
    from safetensors.torch import load_file

    left, right = load_file(str(Path(a) / "model.safetensors")), load_file(str(Path(b) / "model.safetensors"))
    if left.keys() != right.keys():
        raise ValueError(f"{a} and {b} hold different tensors: {sorted(set(left) ^ set(right))[:5]}")
    return {key: float((left[key].float() - right[key].float()).abs().max()) for key in sorted(left)}


def publish(built: Path, target: Path = SHIPPED_DIR, log=print) -> Path:
    """Copy a built course model into target (assets/course-model), keeping its LICENSE and README."""
    import torch

    built, target = Path(built), Path(target)
    staging = target.with_name(target.name + ".publishing")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(built, staging)
    for name in LICENCE_FILES:
        if (target / name).is_file():
            shutil.copy2(target / name, staging / name)
    from safetensors.torch import load_file

    parameters = sum(tensor.numel() for tensor in load_file(str(staging / "model.safetensors")).values())
    pretrain = json.loads((staging / "pretrain_info.json").read_text(encoding="utf-8"))
    info = {"recipe_hash": built.name.rsplit("-", 1)[1], "built_as": built.name, "parameters": parameters,
            "recipe_seconds": pretrain.get("seconds"), "torch": torch.__version__,
            "model.safetensors sha256": _sha256(staging / "model.safetensors"),
            "published": time.strftime("%Y-%m-%d"), "rebuild": "make course-model (PUBLISH=1 to replace this copy)"}
    (staging / INFO_FILE).write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    log(f"Published {built.name} to {target}")
    return target


def rebuild(cache: Path, publish_to: Optional[Path] = None, log=print) -> dict:
    """Build the course model in cache (reusing a finished build there) and compare it with the shipped weights."""
    from .finetune.pretrain import ensure_food_base_checkpoint

    started = time.perf_counter()
    built = ensure_food_base_checkpoint(Path(cache), log=log)
    report = {"built": str(built), "seconds": round(time.perf_counter() - started, 1), "recipe_hash": recipe_hash(),
              "shipped_hash": shipped_hash()}
    if (SHIPPED_DIR / "model.safetensors").is_file():
        differences = weight_differences(built, SHIPPED_DIR)
        report["bit_identical"] = _sha256(built / "model.safetensors") == _sha256(SHIPPED_DIR / "model.safetensors")
        report["largest_weight_difference"] = max(differences.values())
    if publish_to is not None:
        publish(built, publish_to, log=log)
    return report


# ---- what the course model can do ---------------------------------------------------------------------
def cuisines_named(answer: str) -> List[str]:
    """The cuisines (dishes.json names) an answer names, longest names first ("美式中餐" is not "中国菜")."""
    from .food_vqa import CUISINE_NAMES

    names = sorted(((name, cuisine) for cuisine, by_lang in CUISINE_NAMES.items() for name in by_lang.values()),
                   key=lambda pair: -len(pair[0]))
    text, found = answer.lower(), []
    for name, cuisine in names:
        if name.lower() in text:
            text = text.replace(name.lower(), " ")
            if cuisine not in found:
                found.append(cuisine)
    return found


def _is_one_token_repeated(ids: List[int]) -> bool:
    return len(ids) >= 4 and len(set(ids)) == 1


def measure(model_path: Path, data_root: Path, split: str = "test", max_new_tokens: int = 32, device: str = "cpu",
            progress: bool = True, batch_size: int = 8) -> dict:
    """What the lessons show, measured on the food set's held-out pictures, in both languages.

    * multiple choice about base and new dishes: the kit's evaluation of the fine-tuning lessons (the course
      model is their "before"), kept in the cache's evaluations/ folder, so lesson 11 and the fine-tune's
      acceptance test read it instead of answering again;
    * a conversation per picture: the open question, then the cuisine follow-up with the first turn in the
      history, as lessons 01, 06 and 08 ask it; right when the second answer names the dish's cuisine only.
      First turns are answered in batches (InternVL2's batch_chat), second turns one by one (model.chat with
      the history: batch_chat takes none);
    * every conversation answer: does it end with <|im_end|> within max_new_tokens, is it one token repeated;
    * new dishes: the share of open answers that say "I do not know this dish" (before the fine-tune).
    """
    import torch
    from tqdm.auto import tqdm
    from transformers import StoppingCriteriaList

    from .evaluation import evaluate_cached, parse_dish
    from .finetune.food import evaluations_dir, kit_set
    from .food_vqa import FOLLOW_UP_QUESTION, UNKNOWN_ANSWER
    from .models import load_internvl
    from .serving.transformers_backend import TokenCounter
    from .tiling import load_image, tiling_settings

    data_root = Path(data_root)
    kit = kit_set(data_root)
    dishes, records = kit["dishes"], kit["eval"]["kit food set"]
    scored = evaluate_cached(model_path, {"kit food set": (records, data_root)}, dishes, evaluations_dir(),
                             device=device, batch_size=batch_size, progress=progress)["kit food set"]
    model, tokenizer = load_internvl(model_path, device, torch.float32 if device == "cpu" else None)
    stop_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    settings = tiling_settings(model.config)

    def ask(pixels, questions, history=None):
        """[(answer, generated ids)]: one question per picture, or one follow-up after history."""
        counter = TokenCounter()
        config = {"max_new_tokens": max_new_tokens, "do_sample": False,
                  "stopping_criteria": StoppingCriteriaList([counter])}
        with torch.no_grad():
            if history is None:
                answers = model.batch_chat(tokenizer, torch.cat(pixels), questions, config,
                                           num_patches_list=[p.shape[0] for p in pixels])
            else:
                answers = [model.chat(tokenizer, pixels[0], questions[0], config, history=history)]
        rows = counter.ids.tolist() if counter.ids is not None else [[] for _ in answers]
        return list(zip(answers, rows))

    def turn(question, answer, ids):
        generated = ids[: ids.index(stop_id)] if stop_id in ids else ids
        return {"question": question, "answer": answer, "ended": stop_id in ids,
                "repeated": _is_one_token_repeated(generated)}

    opens = [r for r in records if r["kind"] == "open" and r["split"] == split]
    conversations = []
    with tqdm(total=len(opens), desc="conversations", unit="picture", disable=not progress) as bar:
        for start in range(0, len(opens), batch_size):
            batch = opens[start: start + batch_size]
            pixels = [load_image(data_root / r["image"], **settings).to(model.device, model.dtype) for r in batch]
            firsts = ask(pixels, [r["question"] for r in batch])
            for record, picture, (answer, ids) in zip(batch, pixels, firsts):
                follow_up = FOLLOW_UP_QUESTION[record["lang"]]
                first = record["question"] if "<image>" in record["question"] else "<image>\n" + record["question"]
                history = [(first, answer)]  # as chat() records its first turn
                (second, second_ids), = ask([picture], [follow_up], history)
                turns = [turn(record["question"], answer, ids), turn(follow_up, second, second_ids)]
                conversations.append({"record": record["id"], "dish": record["dish"], "group": record["group"],
                                      "lang": record["lang"], "cuisine": record["cuisine"], "turns": turns,
                                      "named": parse_dish(answer, dishes), "cuisines": cuisines_named(second)})
            bar.update(len(batch))

    def share(rows, test) -> Optional[float]:
        return round(sum(bool(test(row)) for row in rows) / len(rows), 4) if rows else None

    figures = {"split": split, "max_new_tokens": max_new_tokens, "model": str(model_path)}
    for lang in ("zh", "en", None):
        key = lang or "both"
        base = [c for c in conversations if c["group"] == "base" and lang in (None, c["lang"])]
        new = [c for c in conversations if c["group"] == "new" and lang in (None, c["lang"])]
        figures[key] = {
            "base_mc": scored.accuracy(group="base", split=split, kind="mc", lang=lang),
            "base_open": share(base, lambda c: c["named"] == c["dish"]),
            "base_follow_up": share(base, lambda c: c["cuisines"] == [c["cuisine"]]),
            "new_mc": scored.accuracy(group="new", split=split, kind="mc", lang=lang),
            "new_says_unknown": share(new, lambda c: any(UNKNOWN_ANSWER[x].rstrip("。.") in c["turns"][0]["answer"]
                                                         for x in UNKNOWN_ANSWER)),
            "conversations": len(base) + len(new),
        }
    answers = [turn for c in conversations for turn in c["turns"]]
    figures["answers"] = len(answers)
    figures["ended_within_max_new_tokens"] = share(answers, lambda t: t["ended"])
    figures["one_token_repeated"] = sum(t["repeated"] for t in answers)
    figures["examples"] = [{"dish": c["dish"], "lang": c["lang"], "turns": c["turns"]} for c in conversations[:6]]
    figures["not_ended"] = [{"dish": c["dish"], "lang": c["lang"], "question": t["question"], "answer": t["answer"]}
                            for c in conversations for t in c["turns"] if not t["ended"]][:20]
    return figures


def format_figures(figures: dict) -> str:
    """The figures as a small table (benchmarks/course_model_benchmark.py prints it)."""
    rows = [("base dishes, multiple choice", "base_mc"), ("base dishes, open question", "base_open"),
            ("base dishes, cuisine follow-up (2nd turn)", "base_follow_up"),
            ("new dishes, multiple choice", "new_mc"), ("new dishes, says it does not know", "new_says_unknown")]
    lines = [f"{'':44s} {'zh':>7s} {'en':>7s} {'both':>7s}"]
    for label, key in rows:
        cells = [figures[lang][key] for lang in ("zh", "en", "both")]
        lines.append(f"{label:44s} " + " ".join(f"{v:7.1%}" if v is not None else f"{'-':>7s}" for v in cells))
    lines.append(f"answers that end with <|im_end|> within {figures['max_new_tokens']} tokens: "
                 f"{figures['ended_within_max_new_tokens']:.1%} of {figures['answers']}; "
                 f"one token repeated: {figures['one_token_repeated']}")
    return "\n".join(lines)
