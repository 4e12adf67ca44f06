"""The statistics of an accuracy: Wilson score intervals, McNemar's exact test, and the counts of scored rows.

What the confidence intervals mean
----------------------------------
What the confidence intervals mean
----------------------------------
Each accuracy comes with a Wilson score 95 % interval: the range of true accuracies that would make the
observed count unsurprising. On 10 questions, 8 correct gives 49.0 % - 94.3 %: small groups say little, and
two models whose intervals overlap widely have not been told apart. The Wilson interval stays inside
[0, 1] and behaves at 0/n and n/n, where the textbook p +- 1.96 * sqrt(p(1-p)/n) collapses to a point.
Before/after comparisons on the same questions are paired; ``compare`` adds McNemar's exact test on the
fixed and broken counts, which is sharper than comparing two intervals.
"""

import math
from typing import Sequence, Tuple

from ..question_format import LETTERS

Z95 = 1.959963984540054  # the 97.5th percentile of the standard normal


def wilson_interval(correct: int, n: int, z: float = Z95) -> Tuple[float, float]:
    """Wilson score interval for correct/n (95 % by default); (0, 1) when n is 0."""
    if n < 0 or not 0 <= correct <= n:
        raise ValueError(f"need 0 <= correct <= n, got correct={correct}, n={n}")
    if n == 0:
        return 0.0, 1.0
    p = correct / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def mcnemar_p(fixed: int, broken: int) -> float:
    """Two-sided exact McNemar test: how surprising fixed vs broken is if tuning changed nothing."""
    n = fixed + broken
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(fixed, broken) + 1)) / 2**n
    return min(1.0, 2 * tail)


def accuracy_stats(rows: Sequence[dict]) -> dict:
    """n, correct, accuracy and its Wilson 95 % interval, unparsed count and rate, parsed_accuracy and
    official_expected (FoodieQA's random-guess rule, in expectation) over scored rows."""
    n = len(rows)
    correct = sum(bool(r["correct"]) for r in rows)
    unparsed = sum(bool(r["unparsed"]) for r in rows)
    low, high = wilson_interval(correct, n)
    guessed = sum(1 / max(1, r.get("n_choices") or len(LETTERS)) for r in rows if r["unparsed"] and r["kind"] == "mc")
    return {
        "n": n,
        "correct": correct,
        "accuracy": correct / n if n else math.nan,
        "ci_low": low,
        "ci_high": high,
        "unparsed": unparsed,
        "unparsed_rate": unparsed / n if n else math.nan,
        "parsed_accuracy": correct / (n - unparsed) if n > unparsed else math.nan,
        "official_expected": (correct + guessed) / n if n else math.nan,
    }
