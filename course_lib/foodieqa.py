"""FoodieQA (Li et al., EMNLP 2024), the seed lesson's data: read the official release folder.

The release (a gated download) holds `sivqa_tidy.json` (single-image VQA: question, choices (4), answer
"0"-"3", question_type, food_name, question_id, food_meta {main_ingredient, id, food_name, food_type,
food_location, food_file}, question_en, choices_en), `mivqa_tidy.json`, `textqa_tidy.json` and `images/`.

Its licence is CC BY-NC-ND 4.0 with the term "Evaluation only: not for training models". So the kit
evaluates on it (load_sivqa) and trains on its own food set (course_lib.kit_food_set). The seed lesson did
train on it; to_xtuner_training() reproduces that conversion only when the licence is acknowledged.
"""

import json
import os
import tempfile
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
from PIL import Image

from .food_artwork import dish_rgba
from .internvl_format import IMAGE_TAG, with_image_tag
from .question_format import LETTERS, multiple_choice
from .vqa_data import DataError, read_json_records

SIVQA_FILE = "sivqa_tidy.json"
LICENCE_NOTICE = (
    'FoodieQA licence: CC BY-NC-ND 4.0, with the dataset\'s own term "Evaluation only: not for training models". '
    "Use it to evaluate models, for non-commercial research; do not train on it and do not share changed copies."
)
# FoodieQA's questions ask about region, cuisine, ingredients, ... so the instruction asks for the option text.
MC_INSTRUCTION = {"zh": "请回答选项字母和选项内容。", "en": "Answer with the option letter and the option text."}


RELEASE_FILES = (SIVQA_FILE, "mivqa_tidy.json", "textqa_tidy.json")


def is_release(folder) -> bool:
    """Whether folder is (or lies inside) a FoodieQA release: a folder holding one of its *_tidy.json files."""
    folder = Path(folder).resolve()
    return any((place / name).is_file() for place in (folder, *folder.parents) for name in RELEASE_FILES)


def check_training_allowed(image_folder, acknowledged: bool) -> None:
    """Where FoodieQA would enter training (course_lib.finetune.runner.new_run): refuse it unless acknowledged."""
    if is_release(image_folder) and not acknowledged:
        raise LicenceError(
            f"{image_folder} is a FoodieQA release, and a run would train on its pictures. {TRAINING_REFUSAL} "
            'To train on it anyway, as the seed lesson did: plan_finetune(setup, train_on="foodieqa", '
            "acknowledge_foodieqa_licence=True), or new_run(..., acknowledge_foodieqa_licence=True)."
        )


def mc_question(question: str, choices, lang: str) -> str:
    return multiple_choice(question, choices, MC_INSTRUCTION[lang])


def _sivqa_path(folder) -> Path:
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(
            f"FoodieQA folder {folder} does not exist; download the release (a gated dataset: request "
            "access first) and set COURSE_DATA_PATH (or real.data_path) to the folder that holds "
            f"{SIVQA_FILE}"
        )
    path = folder / SIVQA_FILE
    if not path.is_file():
        nested = sorted(folder.glob(f"*/{SIVQA_FILE}"))
        hint = f"; it is in {nested[0].parent}: point at that folder" if nested else ""
        raise DataError(
            f"{folder} has no {SIVQA_FILE}{hint}; the FoodieQA release folder holds sivqa_tidy.json, "
            "mivqa_tidy.json, textqa_tidy.json and images/"
        )
    return path


def find_image(folder, food_file: str) -> Optional[str]:
    """food_file as a path relative to the release folder: as given, or under images/ (releases differ)."""
    folder = Path(folder)
    name = str(food_file).replace("\\", "/").lstrip("/")
    for candidate in (name, f"images/{name}", f"images/{Path(name).name}"):
        if (folder / candidate).is_file():
            return candidate
    return None


def _check_raw(index: int, record, path: Path) -> List[str]:
    where = f"record {index}" + (f" (question_id {record.get('question_id')!r})" if isinstance(record, dict) else "")
    if not isinstance(record, dict):
        return [f"{where}: is not an object"]
    problems = []
    for field in ("question", "choices", "answer", "food_meta"):
        if field not in record:
            problems.append(f"{where}: field '{field}' is missing; is {path.name} the original release file?")
    if problems:
        return problems
    choices = record["choices"]
    if not isinstance(choices, list) or len(choices) != 4:
        problems.append(f"{where}: field 'choices' must be a list of 4 options, got {choices!r:.80}")
    if str(record["answer"]) not in ("0", "1", "2", "3"):
        problems.append(f"{where}: field 'answer' is {record['answer']!r}; FoodieQA answers are '0' to '3'")
    meta = record["food_meta"]
    if not isinstance(meta, dict) or not meta.get("food_file"):
        problems.append(f"{where}: field 'food_meta.food_file' is missing; it names the record's image")
    return problems


def read_sivqa(folder, log=print) -> list:
    """The raw records of sivqa_tidy.json, checked; prints the licence notice."""
    path = _sivqa_path(folder)
    log(LICENCE_NOTICE)
    records = read_json_records(path)
    problems = [p for index, record in enumerate(records) for p in _check_raw(index, record, path)]
    if problems:
        shown = "\n".join(f"  - {p}" for p in problems[:8])
        raise DataError(f"{path}: {len(problems)} problem(s) in {len(records)} records:\n{shown}", problems)
    return records


def _food_name(record) -> str:
    return str(record.get("food_name") or record["food_meta"].get("food_name") or "")


def load_sivqa(folder, langs=("zh", "en"), require_images: bool = True, log=print) -> list:
    """FoodieQA's single-image questions as the kit's evaluation records (kind "mc", split "test").

    One record per question and language (English only when question_en and 4 choices_en exist). Image paths
    are relative to the release folder. A missing image is an error unless require_images=False (then the
    record is skipped and counted).
    """
    folder = Path(folder)
    raw = read_sivqa(folder, log)
    records, missing = [], []
    for index, item in enumerate(raw):
        meta = item["food_meta"]
        image = find_image(folder, meta["food_file"])
        if image is None:
            missing.append(
                f"record {index} (question_id {item.get('question_id')!r}): field 'food_meta.food_file' "
                f"is {meta['food_file']!r}, found neither in {folder} nor in {folder / 'images'}"
            )
            continue
        answer = int(item["answer"])
        dish = str(meta.get("id") if meta.get("id") not in (None, "") else _food_name(item))
        question_id = str(item.get("question_id", f"sivqa-{index}"))
        for lang in langs:
            if lang == "zh":
                question, choices = item["question"], item["choices"]
            else:
                question, choices = item.get("question_en"), item.get("choices_en")
                if not question or not isinstance(choices, list) or len(choices) != 4:
                    continue
            choices = [str(c).strip() for c in choices]
            records.append(
                {
                    "id": f"foodieqa-{question_id}-mc-{lang}",
                    "image": image,
                    "dish": dish,
                    "group": "foodieqa",
                    "split": "test",
                    "kind": "mc",
                    "lang": lang,
                    "question": mc_question(question, choices, lang),
                    "choices": choices,
                    "answer": LETTERS[answer],
                    "answer_text": choices[answer],
                    "question_type": item.get("question_type", ""),
                    "food_name": _food_name(item),
                }
            )
    if missing and require_images:
        shown = "\n".join(f"  - {m}" for m in missing[:8])
        raise DataError(
            f"{folder / SIVQA_FILE}: {len(missing)} of {len(raw)} records have no image file:\n{shown}\n"
            "Download the images/ folder of the release too, or pass require_images=False to skip them.",
            missing,
        )
    if missing:
        log(f"Skipped {len(missing)} of {len(raw)} FoodieQA questions whose image is missing.")
    return records


class LicenceError(PermissionError):
    """Training on FoodieQA was asked for without acknowledging its evaluation-only licence."""


TRAINING_REFUSAL = (
    'FoodieQA\'s licence (CC BY-NC-ND 4.0) comes with the term "Evaluation only: not for training models". '
    "The seed lesson fine-tuned InternVL2 on it anyway (and its lecture does not say whether the 'after' "
    "examples were held out from training). The kit trains on its own food set instead (course_lib.kit_food_set) "
    "and keeps FoodieQA for evaluation, split by image if at all. If you reproduce the seed lesson for private "
    "study, or have the authors' permission, call again with acknowledge_licence=True; never share the trained "
    "weights or the converted file."
)


def xtuner_record(folder, index: int, item: dict, seed_lesson_format: bool = True) -> dict:
    """The index-th raw sivqa record (read_sivqa) as an XTuner training record, its image path relative to folder.

    seed_lesson_format: the seed lesson's conversion, human `question + "\\n<image>"` (the options are
    dropped) and gpt `choices[answer] + "，图中的菜是" + food_name`. Otherwise the kit's four-choice format
    (human "<image>\\n" + question with options, gpt "A. option"). Lesson 09's exercise 09b rebuilds the first.
    """
    image = find_image(folder, item["food_meta"]["food_file"]) or str(item["food_meta"]["food_file"])
    answer = int(item["answer"])
    if seed_lesson_format:
        human = item["question"] + "\n" + IMAGE_TAG
        gpt = item["choices"][answer] + "，图中的菜是" + _food_name(item)
    else:
        human = with_image_tag(mc_question(item["question"], item["choices"], "zh"))
        gpt = f"{LETTERS[answer]}. {item['choices'][answer]}"
    return {
        "id": f"foodieqa-{item.get('question_id', index)}",
        "image": image,
        "conversations": [{"from": "human", "value": human}, {"from": "gpt", "value": gpt}],
    }


def to_xtuner_training(
    folder,
    out_json,
    acknowledge_licence: bool = False,
    seed_lesson_format: bool = True,
    overwrite: bool = False,
    log=print,
) -> Path:
    """Write FoodieQA's single-image questions as XTuner training records (image paths relative to folder).

    seed_lesson_format: the seed lesson's conversion, or the kit's four-choice format (xtuner_record).
    """
    if not acknowledge_licence:
        raise LicenceError(TRAINING_REFUSAL)
    out_json = Path(out_json)
    if out_json.exists() and not overwrite:
        raise FileExistsError(f"{out_json} already exists; choose another file name or pass overwrite=True")
    folder = Path(folder)
    records = [
        xtuner_record(folder, index, item, seed_lesson_format) for index, item in enumerate(read_sivqa(folder, log))
    ]
    out_json.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=out_json.parent, suffix=".part", delete=False) as tmp:
        json.dump(records, tmp, ensure_ascii=False, indent=1)
    os.replace(tmp.name, out_json)
    log(f"Wrote {len(records)} XTuner records to {out_json}; set image_folder to {folder}")
    return out_json


def split_by_image(records: list, test_fraction: float = 0.2, seed: int = 0) -> Tuple[list, list]:
    """(train, test): whole images go to one side, so no image is in both; record order is kept."""
    if not 0 <= test_fraction < 1:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    images = sorted({str(r["image"]) for r in records})
    n_test = int(round(test_fraction * len(images)))
    if test_fraction > 0 and len(images) > 1:
        n_test = min(max(n_test, 1), len(images) - 1)
    order = np.random.default_rng(seed).permutation(len(images))
    test_images = {images[i] for i in order[:n_test]}
    train = [r for r in records if str(r["image"]) not in test_images]
    test = [r for r in records if str(r["image"]) in test_images]
    return train, test


# ---- a fake release, for the tiny-mode lesson and the tests ------------------------------------------
FAKE_DISHES = [  # (artwork id, food_name, region question answer, choices, question_type)
    ("dumplings", "饺子", "东北菜", ["东北菜", "粤菜", "川菜", "新疆菜"], "cuisine_type"),
    ("hot_pot", "火锅", "川菜", ["鲁菜", "川菜", "苏菜", "浙菜"], "cuisine_type"),
    ("mooncake", "月饼", "面粉", ["米粉", "豆腐", "面粉", "羊肉"], "main_ingredient"),
    ("sweet_potato", "烤红薯", "红薯", ["土豆", "红薯", "南瓜", "芋头"], "main_ingredient"),
]


def write_fake_release(folder) -> Path:
    """A FAKE FoodieQA release (4 dishes, 5 questions, emoji pictures) in FoodieQA's format, for demos.

    Not FoodieQA data: the questions were written for the kit and the images are its emoji artwork.
    """
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "FAKE_RELEASE.txt").write_text(
        "A fake FoodieQA-format release written by course_lib.foodieqa.write_fake_release for demonstrations.\n"
        "It is NOT FoodieQA data: questions written for the course kit, images from the kit's emoji artwork.\n",
        encoding="utf-8",
    )
    questions = {
        "cuisine_type": ("图片中的食物属于哪个菜系？", "Which cuisine does the food in the picture belong to?"),
        "main_ingredient": (
            "图片中的食物的主要食材是什么？",
            "What is the main ingredient of the food in the picture?",
        ),
    }
    en_choices = {
        "东北菜": "Northeastern",
        "粤菜": "Cantonese",
        "川菜": "Sichuan",
        "新疆菜": "Xinjiang",
        "鲁菜": "Shandong",
        "苏菜": "Jiangsu",
        "浙菜": "Zhejiang",
        "米粉": "rice flour",
        "豆腐": "tofu",
        "面粉": "wheat flour",
        "羊肉": "lamb",
        "土豆": "potato",
        "红薯": "sweet potato",
        "南瓜": "pumpkin",
        "芋头": "taro",
    }
    records = []
    for number, (art, name, right, choices, qtype) in enumerate(FAKE_DISHES):
        file = f"images/fake_{number}.jpg"
        photo = Image.new("RGB", (160, 120), (236, 228, 212))
        picture = dish_rgba(art).resize((108, 108), Image.LANCZOS)
        photo.paste(picture, (26, 6), picture)
        photo.save(folder / file, quality=85)
        zh, en = questions[qtype]
        records.append(
            {
                "question": zh,
                "choices": choices,
                "answer": str(choices.index(right)),
                "question_type": qtype,
                "food_name": name,
                "question_id": f"fake-vqa-{number}",
                "food_meta": {
                    "main_ingredient": [],
                    "id": 900 + number,
                    "food_name": name,
                    "food_type": "",
                    "food_location": "fake",
                    "food_file": file,
                },
                "question_en": en,
                "choices_en": [en_choices[c] for c in choices],
            }
        )
    # a second question about the first picture (FoodieQA asks several questions per image)
    records.append(
        dict(
            records[0],
            question="图片中的食物通常在哪个节日吃？",
            choices=["春节", "中秋节", "端午节", "元宵节"],
            answer="0",
            question_type="festival",
            question_id="fake-vqa-4",
            question_en="",
            choices_en=[],
        )
    )
    (folder / SIVQA_FILE).write_text(json.dumps(records, ensure_ascii=False, indent=1), encoding="utf-8")
    return folder
