"""What the course model can do, measured on the food set's held-out pictures: the figures its acceptance test
(tests/test_course_model.py) checks and benchmarks/course_model_benchmark.py prints, and the README's table.

Apart from course_lib.course_model (what the model is and how it is built), because measuring it runs the
evaluation, the serving backend's token counter and the fine-tuning lesson's evaluation sets.
"""

from pathlib import Path
from typing import List, Optional

import torch
from tqdm.auto import tqdm
from transformers import StoppingCriteriaList

from .asking import ask, ask_each, image_question, pixels_for
from .evaluation import evaluate_cached, parse_dish
from .finetune.plan import PROBES, evaluations_dir, kit_set
from .internvl_format import SEPARATOR
from .kit_food_set import CUISINE_NAMES, FOLLOW_UP_QUESTION, UNKNOWN_ANSWER
from .models import load_internvl
from .probe_scores import probe_figures
from .serving.transformers_backend import TokenCounter


def cuisines_named(answer: str) -> List[str]:
    """The cuisines (dishes.json names) an answer names, longest names first ("美式中餐" is not "中国菜")."""
    names = sorted(
        ((name, cuisine) for cuisine, by_lang in CUISINE_NAMES.items() for name in by_lang.values()),
        key=lambda pair: -len(pair[0]),
    )
    text, found = answer.lower(), []
    for name, cuisine in names:
        if name.lower() in text:
            text = text.replace(name.lower(), " ")
            if cuisine not in found:
                found.append(cuisine)
    return found


def _is_one_token_repeated(ids: List[int]) -> bool:
    return len(ids) >= 4 and len(set(ids)) == 1


def measure(
    model_path: Path,
    data_root: Path,
    cache: Path,
    split: str = "test",
    max_new_tokens: int = 32,
    device: str = "cpu",
    progress: bool = True,
    batch_size: int = 8,
) -> dict:
    """What the lessons show, measured on the food set's held-out pictures, in both languages.

    * multiple choice about base and new dishes: the kit's evaluation of the fine-tuning lessons (the course
      model is their "before"), kept in the cache's evaluations/ folder, so lesson 11 and the fine-tune's
      acceptance test read it instead of answering again;
    * a conversation per picture: the open question, then the cuisine follow-up with the first turn in the
      history, as lessons 01, 06 and 08 ask it; right when the second answer names the dish's cuisine only.
      First turns are answered in batches (InternVL2's batch_chat), second turns one by one (model.chat with
      the history: batch_chat takes none);
    * every conversation answer: does it end with <|im_end|> within max_new_tokens, is it one token repeated;
    * new dishes: the share of open answers that say "I do not know this dish" (before the fine-tune);
    * the probes (course_lib.probes): yes/no accuracy and share of yes answers on base and new dishes' pictures,
      the shapes' colour and count.
    """
    data_root = Path(data_root)
    kit = kit_set(data_root)
    dishes, records = kit["dishes"], kit["eval"]["kit food set"]
    sets = {name: (kit["eval"][name], data_root) for name in ("kit food set", PROBES)}
    results = evaluate_cached(
        model_path, sets, dishes, evaluations_dir(cache), device=device, batch_size=batch_size, progress=progress
    )
    scored, probed = results["kit food set"], results[PROBES]
    model, tokenizer = load_internvl(model_path, device, torch.float32 if device == "cpu" else None)
    stop_id = tokenizer.convert_tokens_to_ids(SEPARATOR)

    def answered(pixels, questions, history=None):
        """[(answer, generated ids)]: one question per picture, or one follow-up after history."""
        counter = TokenCounter()
        config = {"max_new_tokens": max_new_tokens, "do_sample": False}
        config["stopping_criteria"] = StoppingCriteriaList([counter])
        if history is None:
            answers = ask_each(model, tokenizer, pixels, questions, config)
        else:
            answers = [ask(model, tokenizer, pixels[0], questions[0], config, history=history)]
        rows = counter.ids.tolist() if counter.ids is not None else [[] for _ in answers]
        return list(zip(answers, rows))

    def turn(question, answer, ids):
        generated = ids[: ids.index(stop_id)] if stop_id in ids else ids
        return {
            "question": question,
            "answer": answer,
            "ended": stop_id in ids,
            "repeated": _is_one_token_repeated(generated),
        }

    opens = [r for r in records if r["kind"] == "open" and r["split"] == split]
    conversations = []
    with tqdm(total=len(opens), desc="conversations", unit="picture", disable=not progress) as bar:
        for start in range(0, len(opens), batch_size):
            batch = opens[start : start + batch_size]
            pixels = [pixels_for(model, data_root / r["image"]) for r in batch]
            firsts = answered(pixels, [r["question"] for r in batch])
            for record, picture, (answer, ids) in zip(batch, pixels, firsts):
                follow_up = FOLLOW_UP_QUESTION[record["lang"]]
                history = [(image_question(record["question"]), answer)]  # as chat() records its first turn
                ((second, second_ids),) = answered([picture], [follow_up], history)
                turns = [turn(record["question"], answer, ids), turn(follow_up, second, second_ids)]
                conversations.append(
                    {
                        "record": record["id"],
                        "dish": record["dish"],
                        "group": record["group"],
                        "lang": record["lang"],
                        "cuisine": record["cuisine"],
                        "turns": turns,
                        "named": parse_dish(answer, dishes),
                        "cuisines": cuisines_named(second),
                    }
                )
            bar.update(len(batch))

    def share(rows, test) -> Optional[float]:
        return round(sum(bool(test(row)) for row in rows) / len(rows), 4) if rows else None

    figures = {"split": split, "max_new_tokens": max_new_tokens, "model": str(model_path)}
    for lang in ("zh", "en", None):
        key = lang or "both"
        base = [c for c in conversations if c["group"] == "base" and lang in (None, c["lang"])]
        new = [c for c in conversations if c["group"] == "new" and lang in (None, c["lang"])]
        figures[key] = {
            "base_mc": scored.accuracy(group="base", split=split, kind="mc", lang=lang),
            "base_open": share(base, lambda c: c["named"] == c["dish"]),
            "base_follow_up": share(base, lambda c: c["cuisines"] == [c["cuisine"]]),
            "new_mc": scored.accuracy(group="new", split=split, kind="mc", lang=lang),
            "new_says_unknown": share(
                new, lambda c: any(UNKNOWN_ANSWER[x].rstrip("。.") in c["turns"][0]["answer"] for x in UNKNOWN_ANSWER)
            ),
            "conversations": len(base) + len(new),
        }
    figures["probes"] = probe_figures(probed)
    answers = [turn for c in conversations for turn in c["turns"]]
    figures["answers"] = len(answers)
    figures["ended_within_max_new_tokens"] = share(answers, lambda t: t["ended"])
    figures["one_token_repeated"] = sum(t["repeated"] for t in answers)
    figures["examples"] = [{"dish": c["dish"], "lang": c["lang"], "turns": c["turns"]} for c in conversations[:6]]
    figures["not_ended"] = [
        {"dish": c["dish"], "lang": c["lang"], "question": t["question"], "answer": t["answer"]}
        for c in conversations
        for t in c["turns"]
        if not t["ended"]
    ][:20]
    return figures


def format_figures(figures: dict) -> str:
    """The figures as a small table (benchmarks/course_model_benchmark.py prints it)."""
    rows = [
        ("base dishes, multiple choice", "base_mc"),
        ("base dishes, open question", "base_open"),
        ("base dishes, cuisine follow-up (2nd turn)", "base_follow_up"),
        ("new dishes, multiple choice", "new_mc"),
        ("new dishes, says it does not know", "new_says_unknown"),
    ]
    lines = [f"{'':44s} {'zh':>7s} {'en':>7s} {'both':>7s}"]
    for label, key in rows:
        cells = [figures[lang][key] for lang in ("zh", "en", "both")]
        lines.append(f"{label:44s} " + " ".join(f"{v:7.1%}" if v is not None else f"{'-':>7s}" for v in cells))
    probes = figures.get("probes")
    if probes:
        lines.append(
            "probes (both languages): yes/no accuracy base {base_yes_no:.1%}, new {new_yes_no:.1%}; said yes "
            "base {base_says_yes:.1%}, new {new_says_yes:.1%} (50% is right); shapes colour "
            "{shapes_colour:.1%}, count {shapes_count:.1%}".format(**probes)
        )
    lines.append(
        f"answers that end with <|im_end|> within {figures['max_new_tokens']} tokens: "
        f"{figures['ended_within_max_new_tokens']:.1%} of {figures['answers']}; "
        f"one token repeated: {figures['one_token_repeated']}"
    )
    return "\n".join(lines)
