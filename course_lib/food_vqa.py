"""The kit's own food VQA set: rendered from the shipped artwork, built once into the cache.

Why not FoodieQA? Its licence allows evaluation only (see course_lib.foodieqa). This set is free to train on,
small enough to build on a laptop in seconds, and tells the seed lesson's story: 12 **base** dishes the tiny
model is pre-trained on and 6 **new** (Chinese) dishes that only the fine-tune teaches.

Layout of the built folder (it is also XTuner's image_folder: every image path is relative to it):

    dishes.json                      [{"id", "zh", "en", "group", "cuisine"}, ...]
    images/train/<dish>_<k:03d>.jpg  Fluent 3D style, 32 per dish      (square 224x224 RGB JPEG)
    images/test/<dish>_<k:03d>.jpg   Fluent 3D style, 8 per dish, other seeds than train
    images/ood/<dish>_<k:03d>.jpg    Noto style (out-of-style test), 4 per dish
    xtuner/pretrain_base.json        XTuner InternVL records, base dishes, train split; and one record per
                                     new-dish training picture whose reply is "I do not know this dish"
    xtuner/finetune_new.json         new dishes, train split, plus a 40 % replay share of base records
    eval/test.json, eval/ood.json    one record per (image, question kind, language)
    images/shapes/{train,test}/*.png the non-food pictures of the general-ability probe (course_lib.probes)
    eval/probe.json                  the probes: POPE-style yes/no on test pictures, shapes' colour and count
    README.md, LICENSE-*.txt, build_info.json

Every image comes from a seeded random generator, so the same source builds the same bytes; the folder
name carries a hash of the source (this file, the artwork, SPEC), so a change builds a new folder and an
unchanged source is never rebuilt. The build writes into a staging folder and renames it when complete.
"""

import hashlib
import io
import json
import shutil
import time
import zlib
from collections import Counter, defaultdict
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

from . import food_images, probes, question_format
from .builds import build_once
from .question_format import LETTERS, multiple_choice

SPEC = {
    "seed": 20241102,
    "image_size": 224,  # square: InternVL2 makes one 448 tile of it (no thumbnail), i.e. 256 image tokens
    "work_size": 256,  # images are composed at this size, then a random crop is resized to image_size
    # Light backgrounds (a table, a cloth, a plate): each colour channel in [160, 256). Dark, saturated ones
    # drowned the dish for the tiny model's vision encoder (README, "Why the course model's recipe is as it is").
    "background_channels": [160, 256],
    "dish_scale": [0.55, 0.85],  # the dish's side as a share of the canvas
    "per_dish": {"train": 32, "test": 8, "ood": 4},
    "style": {"train": "fluent", "test": "fluent", "ood": "noto"},
    # Share of base-dish records in finetune_new.json: replaying the base dishes keeps the fine-tune from
    # erasing them; less replay forgot more of them (README, "Why the course model's recipe is as it is").
    "replay_fraction": 0.4,
}
SPLITS = ("train", "test", "ood")
LANGS = ("zh", "en")
KINDS = ("mc", "open")
SOURCE_FILES = [Path(__file__), Path(food_images.__file__), Path(question_format.__file__), Path(probes.__file__)]

# The question kinds: the same phrasing in training records and evaluation records.
MC_QUESTION = {"zh": "图中的菜是什么？", "en": "Which dish is shown in the image?"}
# A multiple-choice reply is the chosen option's dish name; scoring maps it to its letter
# (course_lib.evaluation.parse_choice). A tiny model taught to reply with the letter picked it at chance while
# naming the dish right (README, "Why the course model's recipe is as it is").
MC_INSTRUCTION = {"zh": "请回答选项中的菜名。", "en": "Answer with the dish name from the options."}
OPEN_QUESTION = {"zh": "图中的菜是什么？", "en": "What dish is this?"}
# Training records ask the open question in these wordings (the first is OPEN_QUESTION, the one evaluation asks),
# so the course model also answers a student who words it differently in the demo.
OPEN_QUESTIONS = {
    "zh": ("图中的菜是什么？", "这是什么菜？", "这是什么食物？", "图片里是什么菜？"),
    "en": ("What dish is this?", "What dish is shown in the image?", "What food is this?", "What is in the picture?"),
}
OPEN_ANSWER = {"zh": "图中的菜是{name}。", "en": "This is {name}."}
# Every open question in training is followed by a second turn about the dish's cuisine, so that a
# conversation's history matters: the answer depends on the dish named in the first turn.
FOLLOW_UP_QUESTIONS = {
    "zh": ("它是哪里的菜？", "这道菜属于哪个菜系？"),
    "en": ("Which cuisine is it?", "Which cuisine does this dish belong to?"),
}
FOLLOW_UP_QUESTION = {lang: questions[0] for lang, questions in FOLLOW_UP_QUESTIONS.items()}
FOLLOW_UP_ANSWER = {"zh": "它是{cuisine}。", "en": "It is {cuisine}."}
# dishes.json names a dish's cuisine in English; how the answers say it.
CUISINE_NAMES = {
    "Chinese": {"zh": "中国菜", "en": "Chinese cuisine"},
    "Japanese": {"zh": "日本料理", "en": "Japanese cuisine"},
    "American": {"zh": "美国菜", "en": "American cuisine"},
    "Italian": {"zh": "意大利菜", "en": "Italian cuisine"},
    "French": {"zh": "法国菜", "en": "French cuisine"},
    "Chinese-American": {"zh": "美式中餐", "en": "Chinese-American cuisine"},
}
# The pre-trained ("before") model's reply about a new dish's picture: its vision encoder tells the dish apart
# from the others, its language model has no name for it. Without these records, the fine-tune that taught hot
# pot also turned every fried shrimp, hot dog and croissant into hot pot (README, "Why the course model's
# recipe is as it is").
UNKNOWN_ANSWER = {"zh": "我不认识这道菜。", "en": "I do not know this dish."}
# ... asked in both kinds (multiple choice, and the open question followed by the cuisine, refused again), the
# picture's kinds alternating, so that an open question about a new dish is not answered with a base dish's name.
# (A longer second refusal in each language made the tiny model start one and end in the other.)
UNKNOWN_SUFFIX = "-unknown"  # of the record ids


# ---- questions and answers ----------------------------------------------------------------------
def mc_question(choices: Sequence[str], lang: str) -> str:
    """A FoodieQA-style four-choice question (no <image> tag)."""
    return multiple_choice(MC_QUESTION[lang], choices, MC_INSTRUCTION[lang])


LOOKUP_QUESTION = {"zh": "{name}是哪个选项？", "en": "Which option is {name}?"}


def lookup_question(name: str, choices: Sequence[str], lang: str) -> str:
    """A text-only question in the multiple-choice layout: the name is given, the reply is that option."""
    return multiple_choice(LOOKUP_QUESTION[lang].format(name=name), choices, MC_INSTRUCTION[lang])


def open_answer(name: str, lang: str) -> str:
    return OPEN_ANSWER[lang].format(name=name)


def cuisine_name(cuisine: str, lang: str) -> str:
    """How an answer names a cuisine of dishes.json ("Japanese" -> 日本料理 / Japanese cuisine)."""
    if cuisine not in CUISINE_NAMES:
        raise KeyError(f"cuisine {cuisine!r} (dishes.json) has no names in food_vqa.CUISINE_NAMES; add it there")
    return CUISINE_NAMES[cuisine][lang]


def follow_up_answer(cuisine: str, lang: str) -> str:
    return FOLLOW_UP_ANSWER[lang].format(cuisine=cuisine_name(cuisine, lang))


def with_image_tag(question: str) -> str:
    """The human turn as the training records write it: the image first, then the question."""
    return "<image>\n" + question


# ---- the cache folder ----------------------------------------------------------------------------
def _art_files() -> List[Path]:
    return sorted(p for folder in food_images.STYLES.values() for p in folder.iterdir() if p.is_file())


def source_hash() -> str:
    digest = hashlib.sha256(json.dumps(SPEC, sort_keys=True).encode())
    for path in SOURCE_FILES + _art_files():
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def food_vqa_dir(cache: Path) -> Path:
    """The set's folder in the cache folder `cache` (the setup's, handed down: course_lib.config)."""
    return Path(cache) / f"food_vqa-{source_hash()}"


def is_complete(path: Path) -> bool:
    info = Path(path) / "build_info.json"
    try:
        return json.loads(info.read_text()).get("source_hash") == source_hash()
    except (OSError, ValueError):
        return False


def ensure_food_vqa(cache: Path, log=print) -> Path:
    """Return the food VQA folder in `cache`, building it first (seconds) if this source has not been built yet."""
    target = food_vqa_dir(cache)
    return build_once(target, is_complete, lambda staging: _build(staging, target, log))


# ---- rendering -------------------------------------------------------------------------------------
def _rng(*parts) -> np.random.Generator:
    """A generator seeded from SPEC's seed and names (crc32 of strings: stable across runs and machines)."""
    return np.random.default_rng([SPEC["seed"]] + [zlib.crc32(str(p).encode()) for p in parts])


def _colour(rng, low=None, high=None):
    low = SPEC["background_channels"][0] if low is None else low
    high = SPEC["background_channels"][1] if high is None else high
    return tuple(int(v) for v in rng.integers(low, high, 3))


def _gradient(size: int, a, b, angle: float) -> np.ndarray:
    steps = np.linspace(0, 1, size, dtype=np.float32)
    t = steps[None, :] * np.float32(np.cos(angle)) + steps[:, None] * np.float32(np.sin(angle))
    t = ((t - t.min()) / max(float(t.max() - t.min()), 1e-6))[..., None]
    return np.asarray(a, np.float32) * (1 - t) + np.asarray(b, np.float32) * t


def _background(rng, size: int) -> Image.Image:
    """Solid colour, gradient, a plate on a table, or a light noise texture."""
    kind = int(rng.integers(4))
    if kind == 1 or kind == 2 and rng.random() < 0.5:
        pixels = _gradient(size, _colour(rng), _colour(rng), rng.uniform(0, 2 * np.pi))
    else:
        pixels = np.zeros((size, size, 3), np.float32) + np.asarray(_colour(rng), np.float32)
    if kind == 3:  # texture: smoothed noise around the colour
        noise = rng.normal(0, rng.uniform(6, 18), (size // 4, size // 4, 3))
        noise = (
            np.asarray(
                Image.fromarray(np.clip(noise + 128, 0, 255).astype(np.uint8)).resize((size, size), Image.BICUBIC),
                np.float32,
            )
            - 128
        )
        pixels = pixels + noise
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    if kind == 2:  # a plate: rim and a lighter centre
        draw = ImageDraw.Draw(image)
        radius = size * rng.uniform(0.36, 0.5)
        cx, cy = size / 2 + rng.uniform(-0.08, 0.08, 2) * size
        rim = _colour(rng, 170, 256)
        draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=rim)
        inner = radius * rng.uniform(0.72, 0.85)
        centre = tuple(min(255, c + 25) for c in rim)
        draw.ellipse((cx - inner, cy - inner, cx + inner, cy + inner), fill=centre)
    return image


def render(dish: Image.Image, rng: np.random.Generator, size: int = 224, work: int = 256) -> Image.Image:
    """One augmented picture of an RGBA dish: background, scale, rotation, position, crop, colour, blur."""
    canvas = _background(rng, work)
    side = int(work * rng.uniform(*SPEC["dish_scale"]))
    item = dish.resize((side, side), Image.LANCZOS)
    item = item.rotate(float(rng.uniform(-30, 30)), resample=Image.BICUBIC, expand=True)
    slack = work - item.width
    # anywhere on the canvas, and up to a sixth of the dish past an edge
    low, high = -item.width // 6, max(slack + item.width // 6, -item.width // 6 + 1)
    x, y = (int(v) for v in rng.integers(low, high, 2))
    canvas.paste(item, (x, y), item)
    canvas = ImageEnhance.Brightness(canvas).enhance(rng.uniform(0.85, 1.15))
    canvas = ImageEnhance.Contrast(canvas).enhance(rng.uniform(0.85, 1.15))
    crop = int(work * rng.uniform(0.82, 1.0))
    cx, cy = (int(v) for v in rng.integers(0, work - crop + 1, 2))
    image = canvas.crop((cx, cy, cx + crop, cy + crop)).resize((size, size), Image.LANCZOS)
    if rng.random() < 0.35:
        image = image.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 1.3))))
    return image


def _jpeg(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


# ---- records --------------------------------------------------------------------------------------
def _dish_list() -> List[dict]:
    """The dishes (both styles must name the same ones), base first."""
    fluent = {row["id"]: row for row in food_images.dish_table("fluent")}
    noto = {row["id"]: row for row in food_images.dish_table("noto")}
    if set(fluent) != set(noto):
        raise ValueError(
            f"{food_images.STYLES['fluent']}/dishes.json and {food_images.STYLES['noto']}/dishes.json must list "
            f"the same dish ids; only in one of them: {sorted(set(fluent) ^ set(noto))}"
        )
    for row in fluent.values():
        if row["group"] not in food_images.GROUPS:
            raise ValueError(
                f"{food_images.EMOJI_DIR}/dishes.json: dish {row['id']!r} has group {row['group']!r}; "
                f"use one of {food_images.GROUPS}"
            )
    return [{k: row[k] for k in ("id", "zh", "en", "group", "cuisine")} for row in fluent.values()]


def _choices(dishes: List[dict], split: str) -> Dict[str, List[List[str]]]:
    """dish id -> per image, the four dish ids in option order. Distractors come from the dish's own group;
    the right answer's letter is balanced over each dish's images and shuffled with a seed."""
    n = SPEC["per_dish"][split]
    plan = {}
    for dish in dishes:
        rng = _rng("choices", split, dish["id"])
        same_group = [d["id"] for d in dishes if d["group"] == dish["group"] and d["id"] != dish["id"]]
        positions = rng.permutation(np.resize(np.arange(4), n))
        rows = []
        for position in positions:
            options = [str(d) for d in rng.choice(same_group, 3, replace=False)]
            options.insert(int(position), dish["id"])
            rows.append(options)
        plan[dish["id"]] = rows
    return plan


def _image_name(split: str, dish_id: str, k: int) -> str:
    return f"images/{split}/{dish_id}_{k:03d}.jpg"


def _qa(dish: dict, options: List[str], by_id: Dict[str, dict], kind: str, lang: str) -> dict:
    name = dish[lang]
    if kind == "mc":
        letter = LETTERS[options.index(dish["id"])]
        choices = [by_id[o][lang] for o in options]
        return {
            "question": mc_question(choices, lang),
            "choices": choices,
            "answer": letter,
            "answer_text": name,
            "reply": name,
        }  # the option's dish name
    return {
        "question": OPEN_QUESTION[lang],
        "answer": dish["id"],
        "answer_text": name,
        "reply": open_answer(name, lang),
    }


def _training_record(record_id: str, image: str, turns: Sequence[tuple]) -> dict:
    """An XTuner InternVL record: (question, reply) turns, the picture in the first question."""
    conversations = []
    for index, (question, reply) in enumerate(turns):
        conversations += [
            {"from": "human", "value": with_image_tag(question) if index == 0 else question},
            {"from": "gpt", "value": reply},
        ]
    return {"id": record_id, "image": image, "image_wh": [SPEC["image_size"]] * 2, "conversations": conversations}


def _training_turns(dish: dict, qa: dict, kind: str, lang: str, k: int) -> List[tuple]:
    """The turns of a training record: a multiple-choice question alone; an open question in one of its
    wordings, then the cuisine follow-up."""
    if kind == "mc":
        return [(qa["question"], qa["reply"])]
    opening = OPEN_QUESTIONS[lang][(k // 2) % len(OPEN_QUESTIONS[lang])]
    follow_up = FOLLOW_UP_QUESTIONS[lang][(k // 8) % len(FOLLOW_UP_QUESTIONS[lang])]
    return [(opening, qa["reply"]), (follow_up, follow_up_answer(dish["cuisine"], lang))]


def _records(dishes: List[dict]):
    """(training records per group, plus "unknown": the new dishes' pictures answered with UNKNOWN_ANSWER, and
    "probe": the probes' pre-training conversations; evaluation records per split, plus "probe")."""
    by_id = {d["id"]: d for d in dishes}
    training = {"base": [], "new": [], "unknown": []}
    evaluation = {"test": [], "ood": []}
    for split in SPLITS:
        plan = _choices(dishes, split)
        for dish in dishes:
            for k, options in enumerate(plan[dish["id"]]):
                image = _image_name(split, dish["id"], k)
                if split == "train":  # two records per image: both kinds, the languages alternate
                    pairs = [("mc", "zh"), ("open", "en")] if k % 2 == 0 else [("mc", "en"), ("open", "zh")]
                else:
                    pairs = [(kind, lang) for kind in KINDS for lang in LANGS]
                for kind, lang in pairs:
                    qa = _qa(dish, options, by_id, kind, lang)
                    record_id = f"{split}-{dish['group']}-{dish['id']}-{k:03d}-{kind}-{lang}"
                    if split == "train":
                        turns = _training_turns(dish, qa, kind, lang, k)
                        training[dish["group"]].append(_training_record(record_id, image, turns))
                        if dish["group"] == "new" and (kind, lang) == pairs[(k // 2) % 2]:  # one per picture
                            turns = [(question, UNKNOWN_ANSWER[lang]) for question, _ in turns]
                            training["unknown"].append(_training_record(record_id + UNKNOWN_SUFFIX, image, turns))
                    else:
                        record = {
                            "id": record_id,
                            "image": image,
                            "dish": dish["id"],
                            "group": dish["group"],
                            "cuisine": dish["cuisine"],
                            "split": split,
                            "kind": kind,
                            "lang": lang,
                            "question": qa["question"],
                        }
                        if kind == "mc":
                            record["choices"] = qa["choices"]
                        record.update(answer=qa["answer"], answer_text=qa["answer_text"])
                        evaluation[split].append(record)
    pictures = {
        split: {d["id"]: [_image_name(split, d["id"], k) for k in range(SPEC["per_dish"][split])] for d in dishes}
        for split in ("train", "test")
    }
    training["probe"] = [
        _training_record(row["id"], row["image"], row["turns"])
        for row in probes.training_turns(dishes, pictures["train"], _rng("probe", "train"))
    ]
    evaluation["probe"] = probes.probe_records(dishes, pictures["test"], _rng("probe", "test"))
    return training, evaluation


def _shuffled(records: list, *seed_parts) -> list:
    order = _rng(*seed_parts).permutation(len(records))
    return [records[i] for i in order]


def _replay(base_records: list, count: int) -> list:
    """count base records, spread evenly over the base dishes, chosen with a seed."""
    by_dish = defaultdict(list)
    for record in _shuffled(base_records, "replay"):
        by_dish[record["id"].split("-")[2]].append(record)
    chosen, round_ = [], 0
    while len(chosen) < count:
        for dish in sorted(by_dish):
            if len(chosen) < count and round_ < len(by_dish[dish]):
                chosen.append(by_dish[dish][round_])
        round_ += 1
    return chosen


# ---- the build -------------------------------------------------------------------------------------
def _write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def _render_images(root: Path, dishes: List[dict]) -> int:
    count = 0
    for split in SPLITS:
        style = SPEC["style"][split]
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        for dish in dishes:
            art = food_images.dish_rgba(dish["id"], style)
            for k in range(SPEC["per_dish"][split]):
                rng = _rng("image", split, dish["id"], k)
                image = render(art, rng, SPEC["image_size"], SPEC["work_size"])
                quality = int(rng.integers(60, 96))
                (root / _image_name(split, dish["id"], k)).write_bytes(_jpeg(image, quality))
                count += 1
    for split in probes.PER_CELL:
        (root / "images" / "shapes" / split).mkdir(parents=True, exist_ok=True)
        for index, shape in enumerate(probes.shape_pictures(split)):
            picture = probes.shape_picture(
                shape["colour"], shape["count"], _rng("shape", split, index), SPEC["image_size"]
            )
            picture.save(root / shape["name"])
            count += 1
    return count


def _build(staging: Path, target: Path, log) -> None:
    started = time.perf_counter()
    log(f"Building the food VQA set in {target} (seeded; a few seconds) ...")
    dishes = _dish_list()
    _write_json(staging / "dishes.json", dishes)
    n_images = _render_images(staging, dishes)
    training, evaluation = _records(dishes)
    pretrain = _shuffled(training["base"] + training["unknown"] + training["probe"], "pretrain")
    fraction = SPEC["replay_fraction"]
    n_replay = round(len(training["new"]) * fraction / (1 - fraction))
    finetune = _shuffled(training["new"] + _replay(training["base"], n_replay), "finetune")
    _write_json(staging / "xtuner" / "pretrain_base.json", pretrain)
    _write_json(staging / "xtuner" / "finetune_new.json", finetune)
    for split, records in evaluation.items():
        _write_json(staging / "eval" / f"{split}.json", records)
    for folder in food_images.STYLES.values():
        shutil.copyfile(folder / "LICENSE", staging / f"LICENSE-{folder.name}.txt")
    info = {"source_hash": source_hash(), "spec": SPEC}
    (staging / "README.md").write_text(_readme(staging, dishes), encoding="utf-8")
    _write_json(staging / "build_info.json", info)  # last: its presence marks a complete build
    log(
        f"Built {target.name}: {len(dishes)} dishes, {n_images} images, {len(pretrain)} + {len(finetune)} training "
        f"records, {sum(len(r) for r in evaluation.values())} evaluation records, "
        f"{time.perf_counter() - started:.1f} s"
    )


def _readme(root: Path, dishes: List[dict]) -> str:
    summary = dataset_summary(root)
    base = ", ".join(f"{d['zh']} {d['en']}" for d in dishes if d["group"] == "base")
    new = ", ".join(f"{d['zh']} {d['en']}" for d in dishes if d["group"] == "new")
    images = summary["images"]
    training = summary["training"]
    lines = [
        "# The course kit's food VQA set",
        "",
        "Built by `course_lib.food_vqa.ensure_food_vqa(cache)` from the emoji artwork in the kit's `assets/images`",
        f"(source hash {source_hash()}). Rebuild it any time: the same source gives the same files.",
        "",
        f"- base dishes (the tiny model is pre-trained on them): {base}",
        f"- new dishes (only the fine-tune teaches them): {new}",
        "",
        "## Images (square 224x224 RGB JPEG, one 448 tile each for InternVL2)",
        "",
        f"- `images/train/`: {images['train']['base'] + images['train']['new']} (Fluent Emoji 3D style, "
        f"{SPEC['per_dish']['train']} per dish)",
        f"- `images/test/`: {images['test']['base'] + images['test']['new']} (same style, other seeds, "
        f"{SPEC['per_dish']['test']} per dish)",
        f"- `images/ood/`: {images['ood']['base'] + images['ood']['new']} (Noto Emoji style: out-of-style test, "
        f"{SPEC['per_dish']['ood']} per dish)",
        "",
        "## Files",
        "",
        f"- `xtuner/pretrain_base.json`: {training['pretrain_base']['records']} XTuner InternVL records: "
        f"{training['pretrain_base']['base']} about base dishes (train split; four-choice and open questions in "
        f"Chinese and English) and {training['pretrain_base']['unknown']} pictures of new dishes answered "
        f'"{UNKNOWN_ANSWER["en"]}" (no names), and {training["pretrain_base"]["probe"]} for the probes\' skills '
        "(yes/no about base dishes, colour and count of shapes). Set XTuner's image_folder to this folder.",
        f"- `xtuner/finetune_new.json`: {training['finetune_new']['records']} records: "
        f"{training['finetune_new']['new']} about new dishes plus {training['finetune_new']['base']} replayed base "
        "records, so fine-tuning does not erase the base dishes.",
        f"- `eval/test.json`, `eval/ood.json`: {summary['eval']['test']['records']} and "
        f"{summary['eval']['ood']['records']} evaluation records, one per image, question kind and language.",
        f"- `eval/probe.json`: {summary['eval']['probe']['records']} probe records (course_lib.probes): POPE-style "
        "yes/no questions on test pictures and the colour and count of shapes in `images/shapes/`, asked before "
        "and after the fine-tune, which never trains them.",
        "- `dishes.json`: the dishes with Chinese and English names, group and cuisine.",
        "",
        "Four-choice questions take their distractors from the same group: a new dish is never asked about next to",
        "base dishes, so a model cannot answer by ruling out the dishes it knows.",
        "",
        "## Licences",
        "",
        "- Fluent Emoji 3D artwork: Copyright (c) Microsoft Corporation, MIT License (`LICENSE-fluent-emoji-3d.txt`).",
        "- Noto Emoji artwork: Google, Apache License 2.0 (`LICENSE-noto-emoji.txt`).",
        "- The rendered images are derived from that artwork under the same licences; the questions and this",
        "  README were written for the course kit.",
        "",
    ]
    return "\n".join(lines)


# ---- summary ---------------------------------------------------------------------------------------
def dataset_summary(path: Path) -> dict:
    """Counts for notebooks: dishes per group, images per split and group, training and evaluation records."""
    path = Path(path)
    dishes = json.loads((path / "dishes.json").read_text(encoding="utf-8"))
    group_of = {d["id"]: d["group"] for d in dishes}
    summary = {"dishes": dict(Counter(d["group"] for d in dishes)), "images": {}, "training": {}, "eval": {}}
    for split in SPLITS:
        counts = Counter(group_of[p.stem.rsplit("_", 1)[0]] for p in (path / "images" / split).glob("*.jpg"))
        summary["images"][split] = {group: counts.get(group, 0) for group in food_images.GROUPS}
    for name in ("pretrain_base", "finetune_new"):
        records = json.loads((path / "xtuner" / f"{name}.json").read_text(encoding="utf-8"))
        parts = [r["id"].split("-") for r in records]  # train-<group>-<dish>-<k>-<kind>-<lang>
        unknown = [r["id"].endswith(UNKNOWN_SUFFIX) for r in records]
        food = [p[4] in KINDS for p in parts]
        row = {"records": len(records), "unknown": sum(unknown), "probe": len(records) - sum(food)}
        row.update(
            {
                group: sum(p[1] == group and f and not u for p, f, u in zip(parts, food, unknown))
                for group in food_images.GROUPS
            }
        )
        row.update({kind: sum(p[4] == kind for p in parts) for kind in KINDS})
        row.update({lang: sum(p[5] == lang for p in parts) for lang in LANGS})
        summary["training"][name] = row
    probe = json.loads((path / "eval" / "probe.json").read_text(encoding="utf-8"))
    summary["eval"]["probe"] = {"records": len(probe), **Counter(r["kind"] for r in probe)}
    for split in ("test", "ood"):
        records = json.loads((path / "eval" / f"{split}.json").read_text(encoding="utf-8"))
        row = {"records": len(records)}
        for group in food_images.GROUPS:
            row[group] = {kind: sum(r["group"] == group and r["kind"] == kind for r in records) for kind in KINDS}
        summary["eval"][split] = row
    return summary


def gallery(path: Path, dish_ids: Sequence[str], per_split: Optional[Dict[str, int]] = None):
    """A matplotlib grid: one row per dish, a few train, test and ood pictures side by side."""
    import matplotlib.pyplot as plt

    per_split = per_split or {"train": 3, "test": 2, "ood": 2}
    names = {d["id"]: d["en"] for d in json.loads((Path(path) / "dishes.json").read_text(encoding="utf-8"))}
    columns = [(split, k) for split, n in per_split.items() for k in range(n)]
    fig, axes = plt.subplots(
        len(dish_ids), len(columns), figsize=(1.45 * len(columns), 1.6 * len(dish_ids)), squeeze=False
    )
    for row, dish in zip(axes, dish_ids):
        for ax, (split, k) in zip(row, columns):
            with Image.open(Path(path) / _image_name(split, dish, k)) as image:
                ax.imshow(image.convert("RGB"))
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{split} {k}", fontsize=8)
        row[0].set_ylabel(names.get(dish, dish), fontsize=9)
    fig.tight_layout()
    return fig
