"""Before and after: the same questions scored for two checkpoints, compared pair by pair (McNemar's exact
test on the fixed and broken counts, sharper than comparing two intervals), and the questions that changed."""

from collections import Counter
from typing import Dict, List, Sequence, Tuple

from ..tables import Table
from ..tables import ci as _ci
from ..tables import percent as _percent
from .results import GROUPING, EvalResult, order_value
from .stats import accuracy_stats, mcnemar_p


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
    keys = sorted(groups, key=lambda key: [order_value(k, v) for k, v in zip(by, key)])
    named = [("/".join(map(str, key)), dict(zip(by, key)), groups[key]) for key in keys]
    named.append(("all", {k: "all" for k in by}, pairs))
    rows = {}
    for name, fields, group in named:
        b, a = accuracy_stats([p[0] for p in group]), accuracy_stats([p[1] for p in group])
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


def dish_grid_items(
    before: EvalResult, after: EvalResult, group: str = "new", split: str = "test", kind: str = "open", lang: str = "zh"
) -> list:
    """One shown question per dish of the group, chosen by rule (not by result): the dish's first question of the
    split (by record id) of that kind in lang, or its first question of any kind if it has none; with the dish's
    tally over every question of the split (all kinds and languages), before and after, so the tallies add up to
    the group's rows of compare(). [{"dish", "shown": (before row, after row), "before", "after", "n"}]"""
    pairs = _paired(before, after)
    items = []
    for dish in sorted(
        {b["dish"] for b, _ in pairs if (b["group"], b["split"]) == (group, split)}, key=before.dish_name
    ):
        rows = sorted(
            (pair for pair in pairs if (pair[0]["group"], pair[0]["split"], pair[0]["dish"]) == (group, split, dish)),
            key=lambda pair: pair[0]["id"],
        )
        preferred = [pair for pair in rows if (pair[0]["kind"], pair[0]["lang"]) == (kind, lang)]
        items.append(
            {
                "dish": dish,
                "shown": (preferred or rows)[0],
                "before": sum(b["correct"] for b, _ in rows),
                "after": sum(a["correct"] for _, a in rows),
                "n": len(rows),
            }
        )
    return items


def what_it_named(result: EvalResult, **filters) -> str:
    """One line on what the answers to the matching open questions named: the right dish, another dish of the
    same group, a dish of another group (by its Chinese name, whichever language it was named in), or no dish
    (with the most frequent such answers quoted)."""
    rows = [r for r in result.select(**filters) if r["kind"] == "open"]
    group_of = {str(d["id"]): d.get("group") for d in result.dishes}
    right, same, other, unnamed = [], Counter(), Counter(), Counter()
    for row in rows:
        named = row["predicted_dish"]
        if named is None:
            unnamed[row["answer"].strip() or "(empty)"] += 1
        elif named == row["dish"]:
            right.append(row)
        else:
            (same if group_of.get(named) == row["group"] else other)[result.dish_name(named, "zh")] += 1

    def listed(counter: Counter, most: int = 3) -> str:
        shown = ", ".join(f"{name} ×{count}" for name, count in counter.most_common(most))
        return f" ({shown}{', …' if len(counter) > most else ''})" if counter else ""

    return (
        f"{len(rows)} open questions: {len(right)} named the right dish, {sum(same.values())} another "
        f"{rows[0]['group'] if rows else ''} dish{listed(same)}, {sum(other.values())} a dish of another group"
        f"{listed(other)}, {sum(unnamed.values())} no dish{listed(unnamed, 2)}"
    )


def common_answers(result: EvalResult, most: int = 3, **filters) -> str:
    """The most frequent answers to the matching questions, with their counts and whether each was right."""
    rows = result.select(**filters)
    counts = Counter((r["answer"].strip() or "(empty)", r["correct"]) for r in rows)
    shown = [f"{answer!r} ×{count} {'✓' if right else '✗'}" for (answer, right), count in counts.most_common(most)]
    return f"{len(rows)} questions; most frequent answers: " + ", ".join(shown)
