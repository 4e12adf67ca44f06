"""Read a model's answer: the option letter it chose, or the dish it named (the probes' answers are read by
course_lib.probe_scores).

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
"""

import re
import unicodedata
from functools import lru_cache
from typing import List, Optional, Sequence, Tuple

from ..probe_scores import PARSERS as PROBE_PARSERS
from ..question_format import LETTERS

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


def parse_choice(
    answer: str, choices: Sequence[str] = (), dishes: Sequence[dict] = (), choice_dishes: Sequence[str] = ()
) -> Optional[str]:
    """The option letter an answer chooses ("A".."D"), or None when it states none or several. choice_dishes, when
    given, are the options' dish ids; otherwise each option's dish is looked up by its name."""
    n_choices = len(choices) if choices else len(LETTERS)
    letters = set(find_letters(answer, n_choices))
    if letters:
        return letters.pop() if len(letters) == 1 else None
    if not choices:
        return None
    by_id = {str(d["id"]): d for d in dishes}
    names = []
    for index, (letter, choice) in enumerate(zip(LETTERS, choices)):
        aliases = [choice]
        dish = by_id.get(choice_dishes[index] if index < len(choice_dishes) else choice_dish(choice, dishes))
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
        return parse_choice(answer, record.get("choices") or (), dishes, record.get("choice_dishes") or ())
    if record["kind"] == "open":
        return parse_dish(answer, dishes)
    if record["kind"] in PROBE_PARSERS:
        return PROBE_PARSERS[record["kind"]](answer)
    raise ValueError(
        f"record {record.get('id')!r} has kind {record['kind']!r}; expected 'mc', 'open' or a probe "
        f"kind ({', '.join(PROBE_PARSERS)})"
    )
