"""Score a checkpoint on a food VQA evaluation set: parse its answers, count, and show what changed.

One concept a module, in the order an evaluation runs:

* ``parsing``: read an answer (the option letter it chose, the dish it named), and why unparsed stays unparsed;
* ``stats``: Wilson intervals, McNemar's exact test, the counts of scored rows;
* ``results``: ``score`` (records + answers -> ``EvalResult``), its tables, confusion matrix and JSON;
* ``running``: ask a checkpoint every question (through ``course_lib.asking``) and keep the result;
* ``before_after``: two results on the same questions, compared pair by pair;
* ``plots``: accuracy bars, the confusion heatmap, a grid of every dish before and after, a gallery of fixed and
  broken questions.

Everything a lesson uses is importable from here (``from course_lib.evaluation import score, compare``).
"""

from .before_after import common_answers, compare, dish_grid_items, fixed_and_broken, what_it_named
from .parsing import choice_dish, find_letters, is_cjk, normalise, parse_answer, parse_choice, parse_dish
from .plots import displayable, plot_accuracy, plot_confusion, plot_dish_grid, plot_examples
from .results import FORMAT, GROUPING, REQUIRED_FIELDS, UNPARSED, Confusion, EvalResult, score
from .running import DEFAULT_GENERATION, evaluate, evaluate_cached, evaluation_file, predict
from .stats import Z95, accuracy_stats, mcnemar_p, wilson_interval

__all__ = [
    "DEFAULT_GENERATION",
    "FORMAT",
    "GROUPING",
    "REQUIRED_FIELDS",
    "UNPARSED",
    "Z95",
    "Confusion",
    "EvalResult",
    "accuracy_stats",
    "choice_dish",
    "common_answers",
    "compare",
    "dish_grid_items",
    "displayable",
    "evaluate",
    "evaluate_cached",
    "evaluation_file",
    "find_letters",
    "fixed_and_broken",
    "is_cjk",
    "mcnemar_p",
    "normalise",
    "parse_answer",
    "parse_choice",
    "parse_dish",
    "plot_accuracy",
    "plot_confusion",
    "plot_dish_grid",
    "plot_examples",
    "predict",
    "score",
    "what_it_named",
    "wilson_interval",
]
