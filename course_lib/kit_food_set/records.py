"""The food set's records: XTuner InternVL training records (pre-training on the base dishes, fine-tuning on the
new ones with a replay share) and evaluation records (held-out and out-of-style pictures, and the probes).

Every record carries what it is about as fields (dish, group, kind, lang; a training record also says whether
its reply is the refusal, "unknown"), so nothing is parsed back out of its id.
"""

from collections import defaultdict
from typing import Dict, List, Sequence

import numpy as np

from .. import food_artwork, probes
from ..internvl_format import with_image_tag
from ..question_format import LETTERS
from .phrasing import (
    FOLLOW_UP_QUESTIONS,
    OPEN_QUESTION,
    OPEN_QUESTIONS,
    UNKNOWN_ANSWER,
    follow_up_answer,
    mc_question,
    open_answer,
)
from .spec import KINDS, LANGS, SPEC, SPLITS, rng


def dish_list() -> List[dict]:
    """The dishes (both styles must name the same ones), base first."""
    fluent = {row["id"]: row for row in food_artwork.dish_table("fluent")}
    noto = {row["id"]: row for row in food_artwork.dish_table("noto")}
    if set(fluent) != set(noto):
        raise ValueError(
            f"{food_artwork.STYLES['fluent']}/dishes.json and {food_artwork.STYLES['noto']}/dishes.json must list "
            f"the same dish ids; only in one of them: {sorted(set(fluent) ^ set(noto))}"
        )
    for row in fluent.values():
        if row["group"] not in food_artwork.GROUPS:
            raise ValueError(
                f"{food_artwork.EMOJI_DIR}/dishes.json: dish {row['id']!r} has group {row['group']!r}; "
                f"use one of {food_artwork.GROUPS}"
            )
    return [{k: row[k] for k in ("id", "zh", "en", "group", "cuisine")} for row in fluent.values()]


def _choices(dishes: List[dict], split: str) -> Dict[str, List[List[str]]]:
    """dish id -> per image, the four dish ids in option order. Distractors come from the dish's own group;
    the right answer's letter is balanced over each dish's images and shuffled with a seed."""
    n = SPEC["per_dish"][split]
    plan = {}
    for dish in dishes:
        generator = rng("choices", split, dish["id"])
        same_group = [d["id"] for d in dishes if d["group"] == dish["group"] and d["id"] != dish["id"]]
        positions = generator.permutation(np.resize(np.arange(4), n))
        rows = []
        for position in positions:
            options = [str(d) for d in generator.choice(same_group, 3, replace=False)]
            options.insert(int(position), dish["id"])
            rows.append(options)
        plan[dish["id"]] = rows
    return plan


def image_name(split: str, dish_id: str, k: int) -> str:
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


def training_record(record_id: str, image: str, turns: Sequence[tuple], **fields) -> dict:
    """An XTuner InternVL record: (question, reply) turns, the picture in the first question; fields (dish,
    group, kind, lang, unknown) say what it is about (XTuner reads only image, image_wh and conversations)."""
    conversations = []
    for index, (question, reply) in enumerate(turns):
        conversations += [
            {"from": "human", "value": with_image_tag(question) if index == 0 else question},
            {"from": "gpt", "value": reply},
        ]
    record = {"id": record_id, "image": image, "image_wh": [SPEC["image_size"]] * 2, **fields}
    return {**record, "conversations": conversations}


def _training_turns(dish: dict, qa: dict, kind: str, lang: str, k: int) -> List[tuple]:
    """The turns of a training record: a multiple-choice question alone; an open question in one of its
    wordings, then the cuisine follow-up."""
    if kind == "mc":
        return [(qa["question"], qa["reply"])]
    opening = OPEN_QUESTIONS[lang][(k // 2) % len(OPEN_QUESTIONS[lang])]
    follow_up = FOLLOW_UP_QUESTIONS[lang][(k // 8) % len(FOLLOW_UP_QUESTIONS[lang])]
    return [(opening, qa["reply"]), (follow_up, follow_up_answer(dish["cuisine"], lang))]


def split_records(dishes: List[dict]):
    """(training records per group, plus "unknown": the new dishes' pictures answered with UNKNOWN_ANSWER, and
    "probe": the probes' pre-training conversations; evaluation records per split, plus "probe")."""
    by_id = {d["id"]: d for d in dishes}
    training = {"base": [], "new": [], "unknown": []}
    evaluation = {"test": [], "ood": []}
    for split in SPLITS:
        plan = _choices(dishes, split)
        for dish in dishes:
            for k, options in enumerate(plan[dish["id"]]):
                image = image_name(split, dish["id"], k)
                if split == "train":  # two records per image: both kinds, the languages alternate
                    pairs = [("mc", "zh"), ("open", "en")] if k % 2 == 0 else [("mc", "en"), ("open", "zh")]
                else:
                    pairs = [(kind, lang) for kind in KINDS for lang in LANGS]
                for kind, lang in pairs:
                    qa = _qa(dish, options, by_id, kind, lang)
                    record_id = f"{split}-{dish['group']}-{dish['id']}-{k:03d}-{kind}-{lang}"
                    if split == "train":
                        turns = _training_turns(dish, qa, kind, lang, k)
                        fields = {"dish": dish["id"], "group": dish["group"], "kind": kind, "lang": lang}
                        training[dish["group"]].append(training_record(record_id, image, turns, **fields))
                        if dish["group"] == "new" and (kind, lang) == pairs[(k // 2) % 2]:  # one per picture
                            turns = [(question, UNKNOWN_ANSWER[lang]) for question, _ in turns]
                            unknown = training_record(f"{record_id}-unknown", image, turns, **fields, unknown=True)
                            training["unknown"].append(unknown)
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
                        if kind == "mc":  # the options' names as asked, and the dishes they name
                            record["choices"], record["choice_dishes"] = qa["choices"], list(options)
                        record.update(answer=qa["answer"], answer_text=qa["answer_text"])
                        evaluation[split].append(record)
    pictures = {
        split: {d["id"]: [image_name(split, d["id"], k) for k in range(SPEC["per_dish"][split])] for d in dishes}
        for split in ("train", "test")
    }
    training["probe"] = [
        training_record(row["id"], row["image"], row["turns"], **{k: row[k] for k in ("dish", "group", "kind", "lang")})
        for row in probes.training_turns(dishes, pictures["train"], rng("probe", "train"))
    ]
    evaluation["probe"] = probes.probe_records(dishes, pictures["test"], rng("probe", "test"))
    return training, evaluation


def shuffled(records: list, *seed_parts) -> list:
    order = rng(*seed_parts).permutation(len(records))
    return [records[i] for i in order]


def replay(base_records: list, count: int) -> list:
    """count base records, spread evenly over the base dishes, chosen with a seed."""
    by_dish = defaultdict(list)
    for record in shuffled(base_records, "replay"):
        by_dish[record["dish"]].append(record)
    chosen, round_ = [], 0
    while len(chosen) < count:
        for dish in sorted(by_dish):
            if len(chosen) < count and round_ < len(by_dish[dish]):
                chosen.append(by_dish[dish][round_])
        round_ += 1
    return chosen
