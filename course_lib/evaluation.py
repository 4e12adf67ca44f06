"""Score a checkpoint on a food VQA evaluation set: parse its answers, count, and show what changed.

The records (the kit's own food set and FoodieQA share one schema) are dicts with ``id``, ``image`` (relative
to a dataset folder), ``dish`` (dish id), ``group`` ("new", "base", "foodieqa"), ``split`` ("test", "ood"),
``kind`` ("mc" or "open"), ``lang`` ("zh" or "en"), ``question``, ``choices`` (mc only), ``answer`` (the
correct letter for mc, the dish id for open) and ``answer_text``. The dish table is a list of
``{"id", "zh", "en", "group", "cuisine"}``.

How an answer is parsed
-----------------------
Text is first NFKC-normalised, so full-width ``Ａ``, ``（B）`` and ``：`` read as ``A``, ``(B)`` and ``:``.

Multiple choice: **an explicit option letter wins**; option text is the fallback.

* A *candidate* is one of the letters A-D (either case; only as many letters as there are choices) that is
  not glued to a word: the ``a`` in ``bao``, the ``d`` in ``I'd`` and the ``D`` in ``3D`` are no candidates.
* English uses ``a``/``A`` as a word ("A bowl of dumplings"), so a candidate counts as a letter only when
  something marks it as an option label:

  1. the next non-space character is a delimiter ``. : ) ] , ; 、 。 ! ?``, a closing quote, ``*``, a line
     break or the end of the answer (``A``, ``b``, ``A.``, ``C. 月饼``, ``The answer is B: mooncake``,
     ``**B**``), or the previous one is an opening bracket or quote (``(B)``, ``"A"``);
  2. it touches Chinese text, spaces aside (``答案是C``, ``选D``, ``A 饺子``): Chinese never uses a bare
     Latin letter as a word;
  3. it follows the word option/choice/letter (``option b is right``) or is followed by is/was
     (``B is correct``): an article is followed by neither;
  4. it is joined to another candidate by or/and/``/``/``&`` (``A or B``).

  "A bowl of dumplings" therefore has no letter (``A`` is followed by a word) and is read by its text.
* One letter (possibly repeated) -> that letter. Two different letters (``A or B``, an echoed option
  list) -> unparsed.
* No letter: the option texts are looked for in the answer, each option under its own text and, through
  the dish table, under the dish's Chinese and English names, so ``mooncake`` answers a Chinese question
  whose option reads ``月饼``. Exactly one option named -> its letter; none or several -> unparsed.
  When an explicit letter and the text disagree (``A. 月饼`` with 月饼 = B), the letter wins, as in
  FoodieQA's scorer; the raw answer stays in the row for inspection.

Open questions: the dish named in the answer, from the Chinese name, the English name (singular or plural,
any case, whole words only: ``rice`` is not found in ``price``) and the id (``fried_shrimp`` as
``fried shrimp``). Overlapping matches keep the longest (``fried rice`` hides ``rice``); no dish, or two
different dishes (``not dumplings but mooncake``), is unparsed.

Why unparsed answers are reported, never guessed
------------------------------------------------
FoodieQA's official scorer takes the first A-D letter in the answer and, when none parses, it
picks a random letter. That adds a lucky 25 % of the unparsable answers to the accuracy, differently on
every run, and hides the most common failure of a freshly fine-tuned model: it stopped answering in the
expected format. Here an unparsed answer is simply wrong, and the unparsed count and rate are shown next to
every accuracy. (For comparisons with published numbers, ``stats()["official_expected"]`` gives the
*expected* score of the random-guess rule for multiple choice: correct + unparsed / number of choices.)

What the confidence intervals mean
----------------------------------
Each accuracy comes with a Wilson score 95 % interval: the range of true accuracies that would make the
observed count unsurprising. On 10 questions, 8 correct gives 49.0 % - 94.3 %: small groups say little, and
two models whose intervals overlap widely have not been told apart. The Wilson interval stays inside
[0, 1] and behaves at 0/n and n/n, where the textbook p +- 1.96 * sqrt(p(1-p)/n) collapses to a point.
Before/after comparisons on the same questions are paired; ``compare`` adds McNemar's exact test on the
fixed and broken counts, which is sharper than comparing two intervals.
"""

import json
import math
import os
import re
import textwrap
import unicodedata
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .fonts import cjk_font, font_family
from .probe_scores import PARSERS as PROBE_PARSERS
from .question_format import LETTERS
from .tables import Table
from .tables import ci as _ci
from .tables import percent as _percent

GROUPING = ("group", "split", "kind")
DEFAULT_GENERATION = {"max_new_tokens": 24, "do_sample": False}
Z95 = 1.959963984540054  # the 97.5th percentile of the standard normal
UNPARSED = "unparsed"
FORMAT = "course_lib.evaluation/1"

# Preferred order of known values in tables and plots; anything else follows alphabetically.
_ORDER = {
    "group": ["new", "base", "foodieqa", "general"],
    "split": ["test", "ood"],
    "kind": ["mc", "open", "yesno", "colour", "count"],
    "lang": ["zh", "en"],
}


# ---- answer parsing ----------------------------------------------------------------------------------
_CJK_RANGES = "\u2e80-\u2fdf\u3000-\u303f\u3040-\u30ff\u3100-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef"
_CJK = re.compile(f"[{_CJK_RANGES}]")
_DELIMITERS = set(".:)]},;、。!?\n*\"'”’」")
_OPENERS = set("([{*\"'“‘「")


def normalise(text) -> str:
    """NFKC (full-width letters and punctuation -> ASCII), no surrounding space; None -> ''."""
    return unicodedata.normalize("NFKC", "" if text is None else str(text)).strip()


def is_cjk(char: str) -> bool:
    return bool(char) and bool(_CJK.match(char))


def find_letters(answer: str, n_choices: int = 4) -> List[str]:
    """The option letters the answer states explicitly, in order (upper case), by the rules above."""
    text = normalise(answer)
    letters = LETTERS[:n_choices]
    # not glued to a word: no letter or digit on either side, no apostrophe joining it to one (I'd, A's)
    candidate = re.compile(
        rf"(?<![A-Za-z0-9])(?<![A-Za-z]['’])([{letters}{letters.lower()}])"
        r"(?![A-Za-z0-9])(?!['’][A-Za-z])"
    )
    found = list(candidate.finditer(text))
    starts = {m.start() for m in found}
    linked = set()
    for m in found:
        joined = re.match(r"\s*(?:or|and|/|&)\s*", text[m.end() :], re.IGNORECASE)
        if joined and m.end() + joined.end() in starts:
            linked.update({m.start(), m.end() + joined.end()})
    result = []
    for m in found:
        before, after = text[: m.start()].rstrip(" \t"), text[m.end() :].lstrip(" \t")
        previous, following = before[-1:], after[:1]
        marked = following == "" or following in _DELIMITERS or previous in _OPENERS
        chinese = is_cjk(previous) or is_cjk(following)
        cue = re.search(r"\b(?:options?|choices?|letter)$", before, re.IGNORECASE) is not None
        copula = re.match(r"(?:is|was)\b", after, re.IGNORECASE) is not None
        if marked or chinese or cue or copula or m.start() in linked:
            result.append(m.group(1).upper())
    return result


def _alias_pattern(alias: str) -> Optional[str]:
    """A regex for one name: Latin names as whole words, any case, optional plural; Chinese as is."""
    alias = normalise(alias)
    if not alias:
        return None
    if not re.search(r"[A-Za-z]", alias):
        return re.escape(alias)
    words = [re.escape(word) for word in re.split(r"[\s_\-]+", alias) if word]
    body = r"[\s_\-]*".join(words) if len(words) > 1 else words[0]
    if words[-1].lower().endswith("s") and len(words[-1]) > 3:  # dumplings -> dumpling(s)
        body = body[:-1] + "(?:s|es)?"
    elif re.search(r"[A-Za-z]$", alias):
        body += "(?:s|es)?"
    start = r"(?<![A-Za-z])" if re.match(r"[A-Za-z]", alias) else ""
    end = r"(?![A-Za-z])" if re.search(r"[A-Za-z]$", alias) else ""
    return start + body + end


@lru_cache(maxsize=256)
def _matcher(names: Tuple[Tuple[str, Tuple[str, ...]], ...]):
    """Compiled (key, pattern) pairs for ((key, (alias, ...)), ...)."""
    compiled = []
    for key, aliases in names:
        for alias in aliases:
            pattern = _alias_pattern(alias)
            if pattern:
                compiled.append((key, re.compile(pattern, re.IGNORECASE)))
    return tuple(compiled)


def _named(text: str, names: Tuple[Tuple[str, Tuple[str, ...]], ...]) -> List[str]:
    """Keys whose names occur in text; overlapping matches keep the longest. In order of appearance."""
    matches = [(m.start(), m.end(), key) for key, pattern in _matcher(names) for m in pattern.finditer(text)]
    matches.sort(key=lambda span: (-(span[1] - span[0]), span[0]))
    kept = []
    for start, end, key in matches:
        if all(end <= s or start >= e for s, e, _ in kept):
            kept.append((start, end, key))
    keys = []
    for _, _, key in sorted(kept):
        if key not in keys:
            keys.append(key)
    return keys


def _dish_key(dishes: Sequence[dict]) -> Tuple[Tuple[str, str, str], ...]:
    return tuple((str(d["id"]), d.get("zh") or "", d.get("en") or "") for d in dishes)


def _dish_names(dish_key) -> Tuple[Tuple[str, Tuple[str, ...]], ...]:
    names = []
    for dish_id, zh, en in dish_key:
        aliases = [zh, en]
        if re.search(r"[A-Za-z]", dish_id):
            aliases.append(dish_id.replace("_", " "))
        names.append((dish_id, tuple(a for a in aliases if a)))
    return tuple(names)


def choice_dish(choice: str, dishes: Sequence[dict]) -> Optional[str]:
    """The id of the dish an option names (its zh, en or id, any case), or None."""
    wanted = normalise(choice).casefold()
    for dish in dishes:
        names = {normalise(dish.get(k)).casefold() for k in ("zh", "en", "id")} - {""}
        if wanted in names or wanted.replace(" ", "_") in names:
            return str(dish["id"])
    return None


def parse_choice(answer: str, choices: Sequence[str] = (), dishes: Sequence[dict] = ()) -> Optional[str]:
    """The option letter an answer chooses ("A".."D"), or None when it states none or several."""
    n_choices = len(choices) if choices else len(LETTERS)
    letters = set(find_letters(answer, n_choices))
    if letters:
        return letters.pop() if len(letters) == 1 else None
    if not choices:
        return None
    by_id = {str(d["id"]): d for d in dishes}
    names = []
    for letter, choice in zip(LETTERS, choices):
        aliases = [choice]
        dish = by_id.get(choice_dish(choice, dishes))
        if dish:
            aliases += [dish.get("zh") or "", dish.get("en") or ""]
            if re.search(r"[A-Za-z]", str(dish["id"])):
                aliases.append(str(dish["id"]).replace("_", " "))
        names.append((letter, tuple(a for a in aliases if a)))
    named = _named(normalise(answer), tuple(names))
    return named[0] if len(named) == 1 else None


def parse_dish(answer: str, dishes: Sequence[dict]) -> Optional[str]:
    """The id of the one dish an open answer names, or None when it names none or several."""
    named = _named(normalise(answer), _dish_names(_dish_key(dishes)))
    return named[0] if len(named) == 1 else None


def parse_answer(record: dict, answer: str, dishes: Sequence[dict]) -> Optional[str]:
    """A letter for multiple choice, a dish id for open questions, "yes"/"no", a colour or a count for the probes
    (course_lib.probe_scores); None when unparsed."""
    if record["kind"] == "mc":
        return parse_choice(answer, record.get("choices") or (), dishes)
    if record["kind"] == "open":
        return parse_dish(answer, dishes)
    if record["kind"] in PROBE_PARSERS:
        return PROBE_PARSERS[record["kind"]](answer)
    raise ValueError(
        f"record {record.get('id')!r} has kind {record['kind']!r}; expected 'mc', 'open' or a probe "
        f"kind ({', '.join(PROBE_PARSERS)})"
    )


# ---- counting ----------------------------------------------------------------------------------------
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


def _stats(rows: Sequence[dict]) -> dict:
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


def _sort_value(field_name: str, value) -> tuple:
    order = _ORDER.get(field_name, [])
    return (order.index(value), "") if value in order else (len(order), str(value))


_STATS_COLUMNS = [
    ("n", lambda r: r["n"]),
    ("accuracy", lambda r: _percent(r["accuracy"])),
    ("95% CI", lambda r: _ci(r["ci_low"], r["ci_high"])),
    ("unparsed", lambda r: f"{r['unparsed']} ({_percent(r['unparsed_rate'])})"),
]


@dataclass
class Confusion:
    """Counts of true dish (rows) against predicted dish (columns, the last one "unparsed")."""

    true: List[str]
    predicted: List[str]
    counts: np.ndarray

    def to_dict(self) -> Dict[str, Dict[str, int]]:
        return {t: {p: int(c) for p, c in zip(self.predicted, row) if c} for t, row in zip(self.true, self.counts)}


@dataclass(repr=False)
class EvalResult:
    """One scored row per record (see ``score``), the dish table and free-form notes (``meta``)."""

    rows: List[dict]
    dishes: List[dict] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        overall = _stats(self.rows)
        name = f"{self.meta['name']!r}, " if self.meta.get("name") else ""
        return (
            f"EvalResult({name}{overall['n']} rows, accuracy {_percent(overall['accuracy'])} "
            f"{_ci(overall['ci_low'], overall['ci_high'])}, unparsed {overall['unparsed']})"
        )

    def select(self, **filters) -> List[dict]:
        """Rows whose fields equal the given values (a value may also be a list/tuple/set of values)."""

        def keep(row):
            return all(row.get(k) in (v if isinstance(v, (list, tuple, set)) else (v,)) for k, v in filters.items())

        return [row for row in self.rows if keep(row)]

    def stats(self, **filters) -> dict:
        """n, correct, accuracy, ci_low, ci_high, unparsed, unparsed_rate, parsed_accuracy, official_expected."""
        return _stats(self.select(**{k: v for k, v in filters.items() if v is not None}))

    def accuracy(self, group=None, split=None, kind=None, lang=None, dish=None) -> float:
        """Share correct among the matching rows (unparsed answers count as wrong)."""
        given = dict(group=group, split=split, kind=kind, lang=lang, dish=dish)
        filters = {k: v for k, v in given.items() if v is not None}
        rows = self.select(**filters)
        if not rows:
            present = {k: sorted({str(r.get(k)) for r in self.rows}) for k in filters}
            raise ValueError(f"no rows with {filters}; present values: {present}")
        return _stats(rows)["accuracy"]

    def _groups(self, by: Sequence[str], rows: Optional[List[dict]] = None) -> Dict[tuple, List[dict]]:
        groups: Dict[tuple, List[dict]] = {}
        for row in self.rows if rows is None else rows:
            groups.setdefault(tuple(row.get(k) for k in by), []).append(row)
        return dict(sorted(groups.items(), key=lambda kv: [_sort_value(k, v) for k, v in zip(by, kv[0])]))

    def grouped(self, by: Sequence[str] = GROUPING, **filters) -> Table:
        """Statistics per combination of the fields in ``by`` (keys like "new/test/mc")."""
        rows = {
            "/".join(map(str, key)): dict(zip(by, key), **_stats(group))
            for key, group in self._groups(by, self.select(**filters)).items()
        }
        return Table(rows, _STATS_COLUMNS)

    def summary(self, by: Sequence[str] = GROUPING) -> Table:
        """Accuracy, 95 % CI and unparsed answers per group/split/kind, plus "all"."""
        table = self.grouped(by)
        table["all"] = dict({k: "all" for k in by}, **_stats(self.rows))
        name = self.meta.get("name")
        table.title = f"{name}: {len(self.rows)} questions" if name else f"{len(self.rows)} questions"
        return table

    def by_dish(self, **filters) -> Table:
        """Statistics per true dish, in dish-table order."""
        table = self.grouped(("dish",), **filters)
        order = {str(d["id"]): i for i, d in enumerate(self.dishes)}
        rows = sorted(table.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0]))
        return Table(
            {k: dict(v, name=self.dish_name(k)) for k, v in rows}, [("dish", lambda r: r["name"]), *_STATS_COLUMNS]
        )

    def unparsed(self, by: Sequence[str] = ("group",)) -> Table:
        """Unparsed answers per group: count and rate (they are counted as wrong, never guessed)."""
        table = self.grouped(by)
        return Table(
            table,
            [
                ("n", lambda r: r["n"]),
                ("unparsed", lambda r: r["unparsed"]),
                ("rate", lambda r: _percent(r["unparsed_rate"])),
            ],
        )

    def confusion(self, **filters) -> Confusion:
        """True dish vs predicted dish (mc: the chosen option's dish) over the matching rows.

        Only questions that ask which dish it is: open ones, and multiple choice whose right option names the
        record's dish (FoodieQA's questions about region, ingredients ... are left out)."""
        rows = [row for row in self.select(**filters) if row.get("about_dish", True)]
        order = [str(d["id"]) for d in self.dishes]
        true = [d for d in order if any(r["dish"] == d for r in rows)]
        true += sorted({r["dish"] for r in rows} - set(true))
        predicted_set = {r["predicted_dish"] for r in rows if r["predicted_dish"] is not None}
        predicted = true + sorted(predicted_set - set(true), key=str) + [UNPARSED]
        counts = np.zeros((len(true), len(predicted)), dtype=int)
        for row in rows:
            column = predicted.index(row["predicted_dish"] if row["predicted_dish"] is not None else UNPARSED)
            counts[true.index(row["dish"]), column] += 1
        return Confusion(true, predicted, counts)

    def dish_name(self, dish_id: str, lang: str = "en") -> str:
        """A dish's name in "zh" or "en" from the dish table; the id itself when unknown."""
        for dish in self.dishes:
            if str(dish["id"]) == dish_id:
                return dish.get(lang) or dish_id
        return dish_id

    def to_json(self, path, overwrite: bool = False) -> Path:
        """Write rows, dish table and meta as JSON; an existing file is kept unless overwrite=True."""
        path = Path(path)
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} exists; pass overwrite=True to replace it, or choose another name")
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {"format": FORMAT, "meta": self.meta, "dishes": self.dishes, "rows": self.rows}
        path.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
        return path

    @classmethod
    def from_json(cls, path) -> "EvalResult":
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if data.get("format") != FORMAT:
            raise ValueError(f"{path} is not an evaluation result written by EvalResult.to_json ({FORMAT})")
        return cls(rows=data["rows"], dishes=data["dishes"], meta=data.get("meta", {}))


REQUIRED_FIELDS = ("id", "dish", "group", "split", "kind", "lang", "question", "answer")


def score(
    records: Sequence[dict],
    answers: Union[Sequence[str], Mapping[str, str]],
    dishes: Sequence[dict],
    meta: Optional[dict] = None,
) -> EvalResult:
    """Parse each answer (a list in record order, or a dict id -> answer) and mark it right or wrong."""
    if isinstance(answers, Mapping):
        missing = [r["id"] for r in records if r["id"] not in answers]
        if missing:
            raise KeyError(f"no answer for {len(missing)} records, e.g. {missing[:3]}")
        answers = [answers[r["id"]] for r in records]
    if len(answers) != len(records):
        raise ValueError(f"{len(answers)} answers for {len(records)} records")
    ids = [r.get("id") for r in records]
    if len(set(ids)) != len(ids):
        raise ValueError("record ids must be unique")
    by_id = {str(d["id"]): d for d in dishes}
    rows = []
    for record, answer in zip(records, answers):
        absent = [k for k in REQUIRED_FIELDS if k not in record]
        if absent:
            raise ValueError(f"record {record.get('id')!r} lacks {absent}")
        parsed = parse_answer(record, answer, dishes)
        choices = record.get("choices") or []
        if record["kind"] == "mc":
            correct = parsed is not None and parsed == str(record["answer"]).strip().upper()
            index = None if parsed is None else LETTERS.index(parsed)
            chosen = choices[index] if index is not None and index < len(choices) else None
            predicted = None if chosen is None else (choice_dish(chosen, dishes) or chosen)
            right = LETTERS.find(str(record["answer"]).strip().upper())
            about_dish = 0 <= right < len(choices) and choice_dish(choices[right], dishes) == str(record["dish"])
        elif record["kind"] == "open":
            correct = parsed is not None and parsed == str(record["answer"])
            predicted, about_dish = parsed, True
        else:  # a probe: the answer is yes/no, a colour or a count, not a dish
            correct = parsed is not None and parsed == str(record["answer"])
            predicted, about_dish = None, False
        rows.append(
            {
                "id": record["id"],
                "dish": str(record["dish"]),
                "group": record["group"],
                "split": record["split"],
                "kind": record["kind"],
                "lang": record["lang"],
                "image": record.get("image"),
                "question": record["question"],
                "choices": list(choices),
                "n_choices": len(choices) or None,
                "expected": record["answer"],
                "answer_text": record.get("answer_text"),
                "answer": "" if answer is None else str(answer),
                "parsed": parsed,
                "predicted_dish": predicted,
                "about_dish": bool(about_dish),
                "correct": bool(correct),
                "unparsed": parsed is None,
                **{key: record[key] for key in ("asked", "sampling") if key in record},
            }
        )
    unknown = sorted({r["dish"] for r in rows if r["kind"] in ("mc", "open")} - set(by_id))
    if dishes and unknown:
        warnings.warn(f"{len(unknown)} dishes of the records are not in the dish table, e.g. {unknown[:3]}")
    return EvalResult(rows, [dict(d) for d in dishes], dict(meta or {}))


# ---- running a model ---------------------------------------------------------------------------------
def _pixel_placement(model):
    """(device, dtype) the vision tower expects; InternVL2's own generate does not convert pixels."""
    try:
        weight = model.vision_model.embeddings.patch_embedding.weight
    except AttributeError:
        weight = next(model.parameters())
    return weight.device, weight.dtype


def predict(
    model,
    tokenizer,
    records: Sequence[dict],
    dataset_root,
    generation_config: Optional[dict] = None,
    batch_size: int = 8,
    progress: bool = True,
) -> List[str]:
    """The model's answer to each record (one image per question) through InternVL2's ``batch_chat``.

    Images are tiled as the checkpoint's config says. Greedy decoding and max_new_tokens=24 unless
    generation_config says otherwise (a config without do_sample stays greedy).
    """
    import torch
    from tqdm.auto import tqdm

    from .tiling import load_image, tiling_settings

    root = Path(dataset_root)
    missing = [r["image"] for r in records if not (root / r["image"]).is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} images are missing under {root}, e.g. {missing[:3]}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    config = dict(DEFAULT_GENERATION if generation_config is None else generation_config)
    config.setdefault("do_sample", False)
    settings = tiling_settings(model.config)
    device, dtype = _pixel_placement(model)
    answers: List[str] = []
    with tqdm(total=len(records), desc="answering", unit="question", disable=not progress) as bar:
        for start in range(0, len(records), batch_size):
            batch = records[start : start + batch_size]
            pixels = [load_image(root / r["image"], **settings) for r in batch]
            pixel_values = torch.cat(pixels).to(device=device, dtype=dtype)
            with torch.no_grad():
                replies = model.batch_chat(
                    tokenizer,
                    pixel_values,
                    [r["question"] for r in batch],
                    dict(config),
                    num_patches_list=[p.shape[0] for p in pixels],
                )
            answers.extend(replies)
            bar.update(len(batch))
    return answers


def evaluate(
    model,
    tokenizer,
    records: Sequence[dict],
    dataset_root,
    dishes: Sequence[dict],
    generation_config: Optional[dict] = None,
    batch_size: int = 8,
    progress: bool = True,
    meta: Optional[dict] = None,
) -> EvalResult:
    """``predict`` then ``score``; meta records the generation settings (and whatever you add)."""
    answers = predict(model, tokenizer, records, dataset_root, generation_config, batch_size, progress)
    notes = {
        "generation_config": dict(DEFAULT_GENERATION if generation_config is None else generation_config),
        "dataset_root": str(dataset_root),
    }
    return score(records, answers, dishes, meta={**notes, **(meta or {})})


def evaluation_file(path, records: Sequence[dict], device: str, batch_size: int, cache) -> Path:
    """Where the result of one checkpoint on one record list is kept: named by a hash of what decides it."""
    import hashlib

    digest = hashlib.sha256(
        json.dumps([list(records), device, batch_size], sort_keys=True, ensure_ascii=False).encode()
    )
    for part in sorted(Path(path).glob("*.safetensors")) + sorted(Path(path).glob("*.py")) + [Path(__file__)]:
        digest.update(part.name.encode())
        digest.update(part.read_bytes())
    return Path(cache) / f"{Path(path).name}-{digest.hexdigest()[:16]}.json"


def evaluate_cached(
    path,
    sets: Mapping[str, Tuple[Sequence[dict], object]],
    dishes: Sequence[dict],
    cache,
    device: str = "cpu",
    batch_size: int = 8,
    progress: bool = True,
    reuse: bool = True,
) -> Dict[str, EvalResult]:
    """{set name: EvalResult} for the checkpoint folder `path` on each (records, dataset_root) of `sets`.

    Answers are deterministic (greedy), so each result is kept in the folder `cache` under a hash of what decides
    it: the checkpoint's weights and code, the records, the device, the batch size and this module (the scoring).
    Asking again (lesson 11 after the tests, the course model's figures and the fine-tune's "before") reads the
    result instead of answering every question again; reuse=False always answers. The model is loaded once,
    only when some set has no kept result.
    """
    import torch

    from .models import load_internvl

    results, missing = {}, {}
    for name, (records, _) in sets.items():
        stored = evaluation_file(path, records, device, batch_size, cache)
        results[name] = EvalResult.from_json(stored) if reuse and stored.is_file() else None
        if results[name] is None:
            missing[name] = stored
    if missing:
        model, tokenizer = load_internvl(path, device, torch.float32 if device == "cpu" else None)
        try:
            for name, stored in missing.items():
                records, root = sets[name]
                results[name] = evaluate(
                    model,
                    tokenizer,
                    records,
                    root,
                    dishes,
                    batch_size=batch_size,
                    progress=progress,
                    meta={"checkpoint": str(path), "eval_set": name},
                )
                stored.parent.mkdir(parents=True, exist_ok=True)
                partial = stored.with_name(f".{stored.name}.{os.getpid()}")
                results[name].to_json(partial, overwrite=True)
                os.replace(partial, stored)
        finally:
            del model
    return results


# ---- before and after --------------------------------------------------------------------------------
def _paired(before: EvalResult, after: EvalResult) -> List[Tuple[dict, dict]]:
    after_by_id = {r["id"]: r for r in after.rows}
    if set(after_by_id) != {r["id"] for r in before.rows}:
        only_before = len({r["id"] for r in before.rows} - set(after_by_id))
        only_after = len(set(after_by_id) - {r["id"] for r in before.rows})
        raise ValueError(
            f"before and after were scored on different records ({only_before} only before, "
            f"{only_after} only after); evaluate both on the same set"
        )
    return [(row, after_by_id[row["id"]]) for row in before.rows]


def compare(before: EvalResult, after: EvalResult, by: Sequence[str] = GROUPING) -> Table:
    """Accuracy before and after with both CIs, the change, fixed/broken counts and McNemar's p, per group."""
    pairs = _paired(before, after)
    groups: Dict[tuple, List[Tuple[dict, dict]]] = {}
    for b, a in pairs:
        groups.setdefault(tuple(b.get(k) for k in by), []).append((b, a))
    keys = sorted(groups, key=lambda key: [_sort_value(k, v) for k, v in zip(by, key)])
    named = [("/".join(map(str, key)), dict(zip(by, key)), groups[key]) for key in keys]
    named.append(("all", {k: "all" for k in by}, pairs))
    rows = {}
    for name, fields, group in named:
        b, a = _stats([p[0] for p in group]), _stats([p[1] for p in group])
        fixed = sum(not x["correct"] and y["correct"] for x, y in group)
        broken = sum(x["correct"] and not y["correct"] for x, y in group)
        rows[name] = dict(
            fields,
            n=b["n"],
            before=b["accuracy"],
            before_ci=(b["ci_low"], b["ci_high"]),
            after=a["accuracy"],
            after_ci=(a["ci_low"], a["ci_high"]),
            change=a["accuracy"] - b["accuracy"],
            fixed=fixed,
            broken=broken,
            mcnemar_p=mcnemar_p(fixed, broken),
            before_unparsed=b["unparsed"],
            after_unparsed=a["unparsed"],
        )
    columns = [
        ("n", lambda r: r["n"]),
        ("before", lambda r: f"{_percent(r['before'])} {_ci(*r['before_ci'])}"),
        ("after", lambda r: f"{_percent(r['after'])} {_ci(*r['after_ci'])}"),
        ("change", lambda r: f"{100 * r['change']:+.1f}"),
        ("fixed", lambda r: r["fixed"]),
        ("broken", lambda r: r["broken"]),
        ("McNemar p", lambda r: f"{r['mcnemar_p']:.3g}"),
        ("unparsed", lambda r: f"{r['before_unparsed']} -> {r['after_unparsed']}"),
    ]
    return Table(rows, columns, title="accuracy in %, 95% Wilson CI in brackets; change in percentage points")


def fixed_and_broken(before: EvalResult, after: EvalResult) -> Dict[str, List[dict]]:
    """{"fixed": wrong before and right after, "broken": right before and wrong after}, with both answers."""
    result = {"fixed": [], "broken": []}
    for b, a in _paired(before, after):
        if b["correct"] == a["correct"]:
            continue
        item = {
            k: b.get(k)
            for k in (
                "id",
                "dish",
                "group",
                "split",
                "kind",
                "lang",
                "image",
                "question",
                "choices",
                "expected",
                "answer_text",
            )
        }
        item.update(before=b["answer"], after=a["answer"], before_parsed=b["parsed"], after_parsed=a["parsed"])
        result["fixed" if a["correct"] else "broken"].append(item)
    return result


# ---- plots -------------------------------------------------------------------------------------------
def _font_context():
    import matplotlib.pyplot as plt

    families = font_family()
    return plt.rc_context({} if families is None else {"font.family": families})


def _names_language(names: str) -> str:
    if names == "auto":
        return "zh" if cjk_font() else "en"
    if names not in ("zh", "en"):
        raise ValueError(f"names must be 'auto', 'zh' or 'en', got {names!r}")
    if names == "zh" and not cjk_font():
        warnings.warn("no CJK font installed (e.g. Debian's fonts-noto-cjk); showing English dish names")
        return "en"
    return names


def displayable(text: str, dishes: Sequence[dict], cjk: Optional[bool] = None) -> str:
    """Text as a plot can show it: unchanged with a CJK font; otherwise Chinese dish names become English
    and any other Chinese run becomes '…'."""
    text = normalise(text)
    if cjk is None:
        cjk = cjk_font() is not None
    if cjk:
        return text
    for dish in sorted(dishes, key=lambda d: -len(d.get("zh") or "")):
        if dish.get("zh") and dish.get("en"):
            text = text.replace(normalise(dish["zh"]), f" {dish['en']} ")
    text = re.sub(f"[{_CJK_RANGES}]+", " … ", text)
    return re.sub(r"[ \t]+", " ", text).replace(" \n", "\n").replace("\n ", "\n").strip()


def plot_accuracy(
    before: EvalResult,
    after: Optional[EvalResult] = None,
    labels: Sequence[str] = ("before", "after"),
    by: Sequence[str] = GROUPING,
    title: str = "Accuracy with 95% Wilson intervals",
):
    """Bars of accuracy per group/split/kind with CI error bars; before and after side by side."""
    import matplotlib.pyplot as plt

    results = [before] if after is None else [before, after]
    tables = [r.grouped(by) for r in results]
    keys = list(tables[0]) + [k for t in tables[1:] for k in t if k not in tables[0]]
    width = 0.8 / len(results)
    colors = ["#9AA5B1", "#4C72B0"] if len(results) == 2 else ["#4C72B0"]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(keys) + 1.5), 4.2))
    for index, (table, label, color) in enumerate(zip(tables, labels, colors)):
        xs, ys, errors = [], [], [[], []]
        for position, key in enumerate(keys):
            if key in table:
                row = table[key]
                xs.append(position - 0.4 + width * (index + 0.5))
                ys.append(row["accuracy"])
                # max(0, ...): at 0 or 100% the interval's end can land a rounding error past the estimate
                errors[0].append(max(0.0, row["accuracy"] - row["ci_low"]))
                errors[1].append(max(0.0, row["ci_high"] - row["accuracy"]))
        ax.bar(xs, ys, width * 0.95, yerr=errors, capsize=3, color=color, label=label, ecolor="#333333")
        for x, y in zip(xs, ys):
            ax.text(
                x,
                0.01,
                f"{100 * y:.0f}",
                ha="center",
                va="bottom",
                fontsize=8,
                color="white" if y > 0.08 else "#333333",
            )
    counts = {key: next(t[key]["n"] for t in tables if key in t) for key in keys}
    ax.set_xticks(range(len(keys)), [key.replace("/", "\n") + f"\nn={counts[key]}" for key in keys], fontsize=9)
    ax.set_ylim(0, 1.16)  # room for the legend above 100 %
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{100 * v:.0f}%"))
    ax.set_ylabel("accuracy (unparsed = wrong)")
    ax.set_title(title)
    ax.spines[["top", "right"]].set_visible(False)
    if len(results) > 1:
        ax.legend(frameon=False, loc="upper right", ncol=2)
    fig.tight_layout()
    return fig


def plot_confusion(result: EvalResult, names: str = "auto", title: str = "True dish vs predicted dish", **filters):
    """Heatmap of the dish confusion matrix with counts; the last column counts unparsed answers."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    confusion = result.confusion(**filters)
    if not confusion.true:
        raise ValueError(f"no dish questions to plot with {filters or 'these results'}")
    with _font_context():
        lang = _names_language(names)

        def label(d):
            return d if d == UNPARSED else displayable(result.dish_name(d, lang), result.dishes)

        size = len(confusion.predicted)
        fig, ax = plt.subplots(figsize=(min(20, 2.5 + 0.55 * size), min(20, 2.0 + 0.5 * len(confusion.true))))
        image = ax.imshow(confusion.counts, cmap="Blues", aspect="auto")
        top = confusion.counts.max() if confusion.counts.size else 0
        if size <= 30:
            for (i, j), count in np.ndenumerate(confusion.counts):
                if count:
                    ax.text(
                        j,
                        i,
                        str(count),
                        ha="center",
                        va="center",
                        fontsize=8,
                        color="white" if count > top / 2 else "black",
                    )
        ax.set_xticks(range(size), [label(d) for d in confusion.predicted], rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(confusion.true)), [label(d) for d in confusion.true], fontsize=8)
        ax.set_xlabel("predicted (multiple choice: the chosen option)")
        ax.set_ylabel("true dish")
        ax.set_title(title)
        colorbar = fig.colorbar(image, ax=ax, shrink=0.8, label="answers")
        colorbar.locator = MaxNLocator(integer=True)
        colorbar.update_ticks()
        fig.tight_layout()
    return fig


def _wrap(text: str, width: int) -> str:
    """Wrap by display width (Chinese characters count double), keeping existing line breaks."""
    lines = []
    for paragraph in text.split("\n"):
        if not _CJK.search(paragraph):
            lines.extend(textwrap.wrap(paragraph, width) or [""])
            continue
        line, used = "", 0
        for char in paragraph:
            step = 2 if is_cjk(char) else 1
            if used + step > width:
                lines.append(line)
                line, used = "", 0
            line, used = line + char, used + step
        lines.append(line)
    return "\n".join(lines)


def _read_as(parsed: Optional[str], item: dict, result: EvalResult, cjk: bool) -> str:
    if parsed is None:
        return "unparsed"
    if item["kind"] == "mc":
        return f"read as {parsed}"
    return f"read as {displayable(result.dish_name(parsed, 'zh' if cjk else 'en'), result.dishes, cjk)}"


def plot_examples(before: EvalResult, after: EvalResult, dataset_root, limit: int = 4, names: str = "auto"):
    """A gallery of fixed and broken questions: image, question, expected answer, answer before and after."""
    import matplotlib.pyplot as plt

    from .tiling import open_rgb

    changes = fixed_and_broken(before, after)
    chosen = [(status, item) for status in ("fixed", "broken") for item in changes[status][:limit]]
    root = Path(dataset_root)
    with _font_context():
        cjk = _names_language(names) == "zh"
        if not chosen:
            fig, ax = plt.subplots(figsize=(6, 1.2))
            ax.axis("off")
            ax.text(
                0.5, 0.5, "no fixed or broken questions: before and after agree everywhere", ha="center", va="center"
            )
            return fig
        fig, axes = plt.subplots(
            len(chosen), 2, figsize=(10, 2.6 * len(chosen)), squeeze=False, gridspec_kw={"width_ratios": [1, 3.2]}
        )
        for (status, item), (image_ax, text_ax) in zip(chosen, axes):
            image_ax.axis("off")
            text_ax.axis("off")
            try:
                image_ax.imshow(open_rgb(root / item["image"]))
            except (OSError, ValueError) as error:
                image_ax.text(
                    0.5, 0.5, f"image not shown:\n{type(error).__name__}", ha="center", va="center", fontsize=8
                )
            name = before.dish_name(item["dish"], "zh" if cjk else "en")
            image_ax.set_title(
                f"{status}: {displayable(name, before.dishes, cjk)}",
                fontsize=10,
                color="#2E7D32" if status == "fixed" else "#C62828",
            )
            mark_before, mark_after = ("✗", "✓") if status == "fixed" else ("✓", "✗")
            if item["kind"] == "mc":
                expected = f"{item['expected']}. {item.get('answer_text') or ''}"
            else:
                expected = before.dish_name(item["expected"], "zh" if cjk else "en")
            text = "\n".join(
                [
                    f"[{item['group']} / {item['split']} / {item['kind']} / {item['lang']}]  {item['id']}",
                    _wrap(displayable(item["question"], before.dishes, cjk), 70),
                    f"expected: {displayable(expected, before.dishes, cjk)}",
                    _wrap(
                        f"{mark_before} before: {displayable(item['before'], before.dishes, cjk) or '(empty)'}"
                        f"  [{_read_as(item['before_parsed'], item, before, cjk)}]",
                        70,
                    ),
                    _wrap(
                        f"{mark_after} after: {displayable(item['after'], after.dishes, cjk) or '(empty)'}"
                        f"  [{_read_as(item['after_parsed'], item, after, cjk)}]",
                        70,
                    ),
                ]
            )
            text_ax.text(0, 1, text, va="top", ha="left", fontsize=9, transform=text_ax.transAxes)
        if not cjk:
            fig.text(
                0.01,
                0.002,
                "Chinese text shown as … (no CJK font installed); dish names in English",
                fontsize=7,
                color="gray",
            )
        fig.tight_layout()
    return fig
