"""The kit's own food VQA set: rendered from the shipped artwork, built once into the cache.

Why not FoodieQA? Its licence allows evaluation only (see course_lib.foodieqa, the adapter for its release).
This set is free to train on, small enough to build on a laptop in seconds, and tells the seed lesson's story: 12
**base** dishes the tiny model is pre-trained on and 6 **new** (Chinese) dishes that only the fine-tune teaches.

Layout of the built folder (it is also XTuner's image_folder: every image path is relative to it):

    dishes.json                      [{"id", "zh", "en", "group", "cuisine"}, ...]
    images/train/<dish>_<k:03d>.jpg  Fluent 3D style, 32 per dish      (square 224x224 RGB JPEG)
    images/test/<dish>_<k:03d>.jpg   Fluent 3D style, 8 per dish, other seeds than train
    images/ood/<dish>_<k:03d>.jpg    Noto style (out-of-style test), 4 per dish
    xtuner/pretrain_base.json        XTuner InternVL records, base dishes, train split; and one record per
                                     new-dish training picture whose reply is "I do not know this dish"
                                     (each record also carries dish, group, kind, lang and, for those, unknown)
    xtuner/finetune_new.json         new dishes, train split, plus a 40 % replay share of base records
    eval/test.json, eval/ood.json    one record per (image, question kind, language); a multiple-choice
                                     record names its options (choices) and their dishes (choice_dishes)
    images/shapes/{train,test}/*.png the non-food pictures of the general-ability probe (course_lib.probes)
    eval/probe.json                  the probes: POPE-style yes/no on test pictures, shapes' colour and count
    README.md, LICENSE-*.txt, build_info.json

Every image comes from a seeded random generator, so the same source builds the same bytes; the folder
name carries a hash of the source (this package, the artwork, the question layout, the probes, SPEC), so a
change builds a new folder and an unchanged source is never rebuilt (course_lib.builds.Artefact).

The modules: spec (SPEC, the seeded generator), phrasing (the questions and answers), rendering (one
augmented picture), records (training and evaluation records), card (the README and the counts), gallery
(a grid of pictures), build (the Artefact FOOD_SET that writes the folder).
"""

from .build import FOOD_SET, ensure_food_vqa, food_vqa_dir, is_complete
from .card import dataset_summary
from .gallery import gallery
from .phrasing import (
    CUISINE_NAMES,
    FOLLOW_UP_QUESTION,
    FOLLOW_UP_QUESTIONS,
    MC_QUESTION,
    OPEN_QUESTION,
    OPEN_QUESTIONS,
    UNKNOWN_ANSWER,
    lookup_question,
    mc_question,
)
from .rendering import render
from .spec import KINDS, LANGS, SPEC, SPLITS

__all__ = [
    "CUISINE_NAMES",
    "FOLLOW_UP_QUESTION",
    "FOLLOW_UP_QUESTIONS",
    "FOOD_SET",
    "KINDS",
    "LANGS",
    "MC_QUESTION",
    "OPEN_QUESTION",
    "OPEN_QUESTIONS",
    "SPEC",
    "SPLITS",
    "UNKNOWN_ANSWER",
    "dataset_summary",
    "ensure_food_vqa",
    "food_vqa_dir",
    "gallery",
    "is_complete",
    "lookup_question",
    "mc_question",
    "render",
]
