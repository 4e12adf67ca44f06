"""How the kit's food set words its questions and answers: the same phrasing in training and evaluation records,
in Chinese and English."""

from typing import Sequence

from ..question_format import multiple_choice

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
        raise KeyError(
            f"cuisine {cuisine!r} (dishes.json) has no names in course_lib.kit_food_set.phrasing.CUISINE_NAMES; "
            "add it there"
        )
    return CUISINE_NAMES[cuisine][lang]


def follow_up_answer(cuisine: str, lang: str) -> str:
    return FOLLOW_UP_ANSWER[lang].format(cuisine=cuisine_name(cuisine, lang))
