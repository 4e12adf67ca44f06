"""The four-choice question layout (FoodieQA's), in one place: the kit's food set, the pre-training's text
look-ups, the FoodieQA adapter, the record checks and the answer parser all use these.

It imports nothing, so the food set's source hash (course_lib.kit_food_set) covers exactly the layout, not the
checking code around it.
"""

LETTERS = "ABCD"


def multiple_choice(question: str, choices, instruction: str) -> str:
    """A FoodieQA-style question: the question, one "A. ..." line per option, the instruction (no <image> tag)."""
    options = "\n".join(f"{letter}. {choice}" for letter, choice in zip(LETTERS, choices))
    return f"{question.strip()}\n{options}\n{instruction}"
