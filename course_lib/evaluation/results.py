"""Scored answers: ``score`` marks each answer right or wrong, ``EvalResult`` holds the rows and tabulates them
(per group, per dish, unparsed, the dish confusion matrix) and keeps them as JSON.

The records (the kit's own food set and FoodieQA share one schema) are dicts with ``id``, ``image`` (relative
to a dataset folder), ``dish`` (dish id), ``group`` ("new", "base", "foodieqa"), ``split`` ("test", "ood"),
``kind`` ("mc" or "open", or a probe's kind), ``lang`` ("zh" or "en"), ``question``, ``choices`` (mc only),
``choice_dishes`` (mc, when each option is a dish: their ids), ``answer`` (the correct letter for mc, the dish id
for open) and ``answer_text``. The dish table is a list of ``{"id", "zh", "en", "group", "cuisine"}``.

Why unparsed answers are reported, never guessed
------------------------------------------------
Why unparsed answers are reported, never guessed
------------------------------------------------
FoodieQA's official scorer takes the first A-D letter in the answer and, when none parses, it
picks a random letter. That adds a lucky 25 % of the unparsable answers to the accuracy, differently on
every run, and hides the most common failure of a freshly fine-tuned model: it stopped answering in the
expected format. Here an unparsed answer is simply wrong, and the unparsed count and rate are shown next to
every accuracy. (For comparisons with published numbers, ``stats()["official_expected"]`` gives the
*expected* score of the random-guess rule for multiple choice: correct + unparsed / number of choices.)
"""

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

from ..question_format import LETTERS
from ..tables import Table
from ..tables import ci as _ci
from ..tables import percent as _percent
from .parsing import choice_dish, parse_answer
from .stats import accuracy_stats

GROUPING = ("group", "split", "kind")
UNPARSED = "unparsed"
FORMAT = "course_lib.evaluation/1"  # written into every result file; from_json refuses any other

# Preferred order of known values in tables and plots; anything else follows alphabetically.
_ORDER = {
    "group": ["new", "base", "foodieqa", "general"],
    "split": ["test", "ood"],
    "kind": ["mc", "open", "yesno", "colour", "count"],
    "lang": ["zh", "en"],
}


def order_value(field_name: str, value) -> tuple:
    """Sort key of a field's value: the known values in _ORDER's order, then the rest alphabetically."""
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
        overall = accuracy_stats(self.rows)
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
        return accuracy_stats(self.select(**{k: v for k, v in filters.items() if v is not None}))

    def accuracy(self, group=None, split=None, kind=None, lang=None, dish=None) -> float:
        """Share correct among the matching rows (unparsed answers count as wrong)."""
        given = dict(group=group, split=split, kind=kind, lang=lang, dish=dish)
        filters = {k: v for k, v in given.items() if v is not None}
        rows = self.select(**filters)
        if not rows:
            present = {k: sorted({str(r.get(k)) for r in self.rows}) for k in filters}
            raise ValueError(f"no rows with {filters}; present values: {present}")
        return accuracy_stats(rows)["accuracy"]

    def _groups(self, by: Sequence[str], rows: Optional[List[dict]] = None) -> Dict[tuple, List[dict]]:
        groups: Dict[tuple, List[dict]] = {}
        for row in self.rows if rows is None else rows:
            groups.setdefault(tuple(row.get(k) for k in by), []).append(row)
        return dict(sorted(groups.items(), key=lambda kv: [order_value(k, v) for k, v in zip(by, kv[0])]))

    def grouped(self, by: Sequence[str] = GROUPING, **filters) -> Table:
        """Statistics per combination of the fields in ``by`` (keys like "new/test/mc")."""
        rows = {
            "/".join(map(str, key)): dict(zip(by, key), **accuracy_stats(group))
            for key, group in self._groups(by, self.select(**filters)).items()
        }
        return Table(rows, _STATS_COLUMNS)

    def summary(self, by: Sequence[str] = GROUPING) -> Table:
        """Accuracy, 95 % CI and unparsed answers per group/split/kind, plus "all"."""
        table = self.grouped(by)
        table["all"] = dict({k: "all" for k in by}, **accuracy_stats(self.rows))
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


def _option_dishes(record: dict, choices: Sequence[str], dishes: Sequence[dict]) -> List[Optional[str]]:
    """The dish id of each option: the record's choice_dishes (the kit's food set writes them), else looked up by
    the option's name in the dish table (FoodieQA's options are names; None where an option names no dish)."""
    given = record.get("choice_dishes")
    if given is None:
        return [choice_dish(choice, dishes) for choice in choices]
    if len(given) != len(choices):
        raise ValueError(
            f"record {record.get('id')!r} has {len(choices)} choices but {len(given)} choice_dishes; "
            "they name the same options in the same order"
        )
    return [None if dish is None else str(dish) for dish in given]


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
            option_dishes = _option_dishes(record, choices, dishes)
            chosen = index is not None and index < len(choices)
            predicted = (option_dishes[index] or choices[index]) if chosen else None
            right = LETTERS.find(str(record["answer"]).strip().upper())
            about_dish = 0 <= right < len(choices) and option_dishes[right] == str(record["dish"])
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
