"""General-ability and hallucination probes: questions the food fine-tune never trains, asked before and after it.

The lecture's warning: after 10 epochs on food pictures the model answers food questions better, but may have
lost what it could do before (general ability), and may claim to see dishes that are not there (hallucination,
as with the anime and regional-dish pictures the lecture shows). Two probes measure both, in both modes:

* **POPE-style yes/no** (Li et al., *Evaluating Object Hallucination in Large Vision-Language Models*, EMNLP
  2023): "Is there <dish> in the image?" about a held-out test picture, once for its own dish (the right answer
  is yes) and once for a dish that is not there (no). POPE draws the absent object at random, or from objects
  that often appear together with the ones in the picture ("adversarial"); here the absent dish is drawn from the
  other group (random) or from the picture's own group (adversarial: the dishes a model confuses it with).
  A model that hallucinates says yes too often: POPE reports the share of yes answers next to accuracy and F1.
* **Non-food pictures**: one to three shapes of one colour on a plain background, asked their colour and how
  many there are. InternVL2-2B answers these easily; the tiny course model learns them in its pre-training
  (course_lib.finetune.pretrain), and the fine-tune never sees one.

The course model's pre-training also teaches the yes/no question, on base dishes only: the picture's own dish is
yes, any other dish no; new-dish pictures are asked only about base dishes (no), so no new dish is ever named
"yes" before the fine-tune teaches what it looks like. Scoring is in course_lib.probe_scores. Like
course_lib.question_format, this module imports nothing from the kit: it is part of the food set's source hash.
"""

from typing import Dict, List, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw

# ---- yes/no (POPE) -------------------------------------------------------------------------------
YES_NO_QUESTION = {"zh": "图中有{name}吗？请回答有或没有。", "en": "Is there {name} in the image? Answer yes or no."}
# The course model looks before it answers: it names the dish it sees (a skill it has), then says whether that is
# the dish asked about (comparing two names in its context). Trained on a bare "有。" / "No." it learnt no link
# between the name asked and the picture (README, "Why the course model's recipe is as it is").
YES_NO_REPLY = {
    "zh": {"yes": "图中是{seen}，有。", "no": "图中是{seen}，没有。"},
    "en": {"yes": "This is {seen}, so yes.", "no": "This is {seen}, so no."},
}
# ... and about a picture of a dish it has no name for (a new dish, before the fine-tune):
UNKNOWN_NO_REPLY = {"zh": "我不认识这道菜，没有。", "en": "I do not know this dish, so no."}


def yes_no_question(name: str, lang: str) -> str:
    return YES_NO_QUESTION[lang].format(name=name)


def yes_no_reply(answer: str, seen: str, lang: str) -> str:
    """The reply to a yes/no question about a picture of the dish named `seen`."""
    return YES_NO_REPLY[lang][answer].format(seen=seen)


# ---- shapes -------------------------------------------------------------------------------------
# Colour names (zh, en) and the RGB each is painted in; every channel is jittered a little per picture.
COLOURS: Dict[str, Tuple[str, Tuple[int, int, int]]] = {
    "red": ("红色", (215, 40, 40)),
    "green": ("绿色", (40, 160, 60)),
    "blue": ("蓝色", (40, 80, 210)),
    "yellow": ("黄色", (235, 200, 30)),
    "black": ("黑色", (30, 30, 30)),
    "purple": ("紫色", (140, 50, 170)),
}
COUNTS = (1, 2, 3)
SHAPES = ("circle", "square", "triangle")
SHAPE_SIDE = 40  # px, of a square; the other shapes are scaled to the same area
COLOUR_QUESTION = {"zh": "图中的图形是什么颜色？", "en": "What colour are the shapes in the image?"}
COUNT_QUESTION = {"zh": "图中有几个图形？", "en": "How many shapes are in the image?"}
COLOUR_REPLY = {"zh": "{zh}。", "en": "{en}."}
COUNT_REPLY = {"zh": "{n}个。", "en": "{n}."}
PER_CELL = {"train": 6, "test": 2}  # pictures per (colour, count)
POPE_PICTURES = 4  # test pictures per dish that the yes/no probe asks about


def colour_name(colour: str, lang: str) -> str:
    zh, _ = COLOURS[colour]
    return zh if lang == "zh" else colour


def colour_reply(colour: str, lang: str) -> str:
    name = colour_name(colour, lang)
    return COLOUR_REPLY[lang].format(zh=name, en=name.capitalize())


def count_reply(count: int, lang: str) -> str:
    return COUNT_REPLY[lang].format(n=count)


def shape_picture(colour: str, count: int, rng: np.random.Generator, size: int = 224) -> Image.Image:
    """count shapes (circles, squares, triangles) of one colour in distinct cells of a 3x3 grid, on a light
    background; places and the exact shade come from rng. Every shape covers about the same area (a square of
    side 40 px), so the painted area tells the count (with sizes from 37 to 59 px the course model counted at
    chance: README)."""
    background = tuple(int(v) for v in rng.integers(225, 256, 3))
    picture = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(picture)
    base = np.array(COLOURS[colour][1])
    fill = tuple(int(v) for v in np.clip(base + rng.integers(-15, 16, 3), 0, 255))
    cell = size // 3
    for index in rng.permutation(9)[:count].tolist():
        shape = SHAPES[int(rng.integers(len(SHAPES)))]
        # equal areas: a circle of diameter 1.128 s and a triangle of base and height 1.414 s cover s^2
        side = round(SHAPE_SIDE * {"circle": 1.128, "square": 1.0, "triangle": 1.414}[shape])
        left = (index % 3) * cell + int(rng.integers(0, cell - side + 1))
        top = (index // 3) * cell + int(rng.integers(0, cell - side + 1))
        box = (left, top, left + side, top + side)
        if shape == "circle":
            draw.ellipse(box, fill=fill)
        elif shape == "square":
            draw.rectangle(box, fill=fill)
        else:
            draw.polygon([(left + side / 2, top), (left + side, top + side), (left, top + side)], fill=fill)
    return picture


def shape_pictures(split: str) -> List[dict]:
    """The shape pictures of a split: [{"name", "colour", "count", "k"}], in a fixed order."""
    rows = []
    for colour in COLOURS:
        for count in COUNTS:
            for k in range(PER_CELL[split]):
                rows.append(
                    {
                        "name": f"images/shapes/{split}/{colour}_{count}_{k:02d}.png",
                        "colour": colour,
                        "count": count,
                        "k": k,
                    }
                )
    return rows


# ---- records ------------------------------------------------------------------------------------
def training_turns(dishes: Sequence[dict], pictures: Dict[str, List[str]], rng: np.random.Generator) -> List[dict]:
    """Pre-training conversations: [{"id", "image", "dish", "group", "kind", "lang", "turns": [(question, reply)]}]
    (a shapes picture has dish and group None, kind "shapes").

    pictures maps a dish id to its training pictures. Every base-dish picture is asked about its own dish and one
    other dish, in a random order; every fourth new-dish picture about two base dishes. Every training shape
    picture is asked its colour and its count, either first (the probes ask each alone). The language alternates
    per picture."""
    base = [d for d in dishes if d["group"] == "base"]
    rows = []
    for dish in dishes:
        others = [d for d in dishes if d["id"] != dish["id"]]
        step = 1 if dish["group"] == "base" else 4
        for k, image in enumerate(pictures[dish["id"]]):
            if k % step:
                continue
            lang = ("zh", "en")[(k // step) % 2]
            if dish["group"] == "base":
                absent = others[int(rng.integers(len(others)))]
                turns = [
                    (yes_no_question(dish[lang], lang), yes_no_reply("yes", dish[lang], lang)),
                    (yes_no_question(absent[lang], lang), yes_no_reply("no", dish[lang], lang)),
                ]
                if rng.random() < 0.5:
                    turns.reverse()
            else:
                asked = [base[i] for i in rng.permutation(len(base))[:2].tolist()]
                turns = [(yes_no_question(d[lang], lang), UNKNOWN_NO_REPLY[lang]) for d in asked]
            rows.append(
                {
                    "id": f"train-{dish['group']}-{dish['id']}-{k:03d}-yesno-{lang}",
                    "image": image,
                    "dish": dish["id"],
                    "group": dish["group"],
                    "kind": "yesno",
                    "lang": lang,
                    "turns": turns,
                }
            )
    for index, shape in enumerate(shape_pictures("train")):
        lang = ("zh", "en")[(index // 2) % 2]
        turns = [
            (COLOUR_QUESTION[lang], colour_reply(shape["colour"], lang)),
            (COUNT_QUESTION[lang], count_reply(shape["count"], lang)),
        ]
        if index % 2:
            turns.reverse()
        rows.append(
            {
                "id": f"train-general-shapes-{index:03d}-colour-{lang}",
                "image": shape["name"],
                "dish": None,
                "group": None,
                "kind": "shapes",
                "lang": lang,
                "turns": turns,
            }
        )
    return rows


def probe_records(dishes: Sequence[dict], pictures: Dict[str, List[str]], rng: np.random.Generator) -> List[dict]:
    """Evaluation records (the kit's schema, course_lib.vqa_data) of both probes, in both languages.

    pictures maps a dish id to its held-out test pictures; the first POPE_PICTURES of each are asked about. The
    absent dish comes from the picture's own group for even k ("adversarial"), from the other group for odd k
    ("random"). Kinds: "yesno" (answer "yes"/"no"), "colour" (an English colour name), "count" ("1".."3")."""
    records = []
    for dish in dishes:
        same = [d for d in dishes if d["group"] == dish["group"] and d["id"] != dish["id"]]
        other = [d for d in dishes if d["group"] != dish["group"]]
        for k, image in enumerate(pictures[dish["id"]][:POPE_PICTURES]):
            sampling = "adversarial" if k % 2 == 0 else "random"
            pool = same if sampling == "adversarial" else other
            absent = pool[int(rng.integers(len(pool)))]
            for asked, answer in ((dish, "yes"), (absent, "no")):
                for lang in ("zh", "en"):
                    records.append(
                        {
                            "id": f"probe-{dish['id']}-{k:03d}-{answer}-{lang}",
                            "image": image,
                            "dish": dish["id"],
                            "group": dish["group"],
                            "split": "test",
                            "kind": "yesno",
                            "lang": lang,
                            "question": yes_no_question(asked[lang], lang),
                            "answer": answer,
                            "answer_text": answer,
                            "asked": asked["id"],
                            "sampling": "present" if answer == "yes" else sampling,
                        }
                    )
    for index, shape in enumerate(shape_pictures("test")):
        for kind, question, answer in (
            ("colour", COLOUR_QUESTION, shape["colour"]),
            ("count", COUNT_QUESTION, str(shape["count"])),
        ):
            for lang in ("zh", "en"):
                records.append(
                    {
                        "id": f"probe-shapes-{index:03d}-{kind}-{lang}",
                        "image": shape["name"],
                        "dish": "shapes",
                        "group": "general",
                        "split": "test",
                        "kind": kind,
                        "lang": lang,
                        "question": question[lang],
                        "answer": answer,
                        "answer_text": answer,
                    }
                )
    return records
