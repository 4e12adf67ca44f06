"""Read and check VQA data before it reaches XTuner or an evaluation loop.

XTuner reads its JSON with little checking: a missing image is printed and silently replaced by another
random record, two `<image>` tags become one, a misspelt role raises NotImplementedError deep inside a
data-loader worker. validate_xtuner_records() finds all of that up front and says which file, which record,
which field, and what to do. load_eval_records() does the same for the kit's evaluation records.
"""

import json
from pathlib import Path
from typing import List, Optional

from .internvl_format import IMAGE_TAG
from .probes import COLOURS, COUNTS
from .question_format import LETTERS
from .tiling import ImageLoadError, open_rgb

ROLES = ("human", "gpt")
EVAL_KINDS = ("mc", "open", "yesno", "colour", "count")  # the last three: course_lib.probes
# What each probe kind's field 'answer' may be.
PROBE_ANSWERS = {"yesno": ("yes", "no"), "colour": tuple(COLOURS), "count": tuple(str(n) for n in COUNTS)}
EVAL_LANGS = ("zh", "en")
SHOW = 8  # problems listed in an error message; the total is always given


class DataError(ValueError):
    """Bad training or evaluation data; the message names the file, the records, the fields and the fix."""

    def __init__(self, message: str, problems: Optional[List[str]] = None):
        super().__init__(message)
        self.problems = problems or []


def raise_if_any(path: Path, problems: List[str], what: str) -> None:
    if not problems:
        return
    shown = "\n".join(f"  - {p}" for p in problems[:SHOW])
    more = f"\n  ... and {len(problems) - SHOW} more" if len(problems) > SHOW else ""
    raise DataError(f"{path}: {len(problems)} problem(s) in {what}:\n{shown}{more}", problems)


def _missing(path: Path) -> str:
    """Why a path that should be a picture file is not one, as the end of a sentence."""
    return "is a folder, not a picture file" if path.is_dir() else "does not exist"


def read_json_records(path) -> list:
    """A JSON list (or a .jsonl file, one record a line), or a DataError with the line and column."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path} is a folder, not a JSON file; pass the records file inside it")
    if not path.is_file():
        raise DataError(
            f"{path} does not exist; check the path (relative paths are from the current folder, {Path.cwd()})"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise DataError(f"{path} is not UTF-8 text ({error}); save it as UTF-8") from error
    if text.startswith("\ufeff"):
        raise DataError(
            f"{path} starts with a UTF-8 byte-order mark (BOM; Windows Notepad and Excel add one), which "
            "XTuner's json.load refuses; save it as UTF-8 without BOM"
        )
    if path.suffix == ".jsonl":
        records = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise DataError(
                        f"{path}: line {number} column {error.colno} is not valid JSON ({error.msg}); "
                        "a .jsonl file holds one complete JSON record per line"
                    ) from error
        return records
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(
            f"{path}: not valid JSON at line {error.lineno}, column {error.colno} ({error.msg}); a trailing comma, "
            "a missing comma or quote, or a file cut short by an interrupted copy are the usual causes"
        ) from error
    if not isinstance(data, list):
        hint = ""
        if isinstance(data, dict):
            lists = [key for key, value in data.items() if isinstance(value, list)]
            hint = f" (it is an object with keys {sorted(data)[:5]}"
            hint += f"; the records may be under {lists[0]!r})" if lists else ")"
        raise DataError(
            f"{path}: the top level is a {type(data).__name__}{hint}; XTuner expects a JSON list of "
            'records: [{"image": ..., "conversations": [...]}, ...]'
        )
    return data


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def describe_record(index: int, record) -> str:
    if isinstance(record, dict) and isinstance(record.get("id"), (str, int)):
        return f"record {index} (id {record['id']!r})"
    return f"record {index}"


def record_image(record: dict):
    """A record's image path as XTuner takes it (it accepts a one-element list too), or None."""
    image = record.get("image")
    return image[0] if isinstance(image, list) and len(image) == 1 else image


def _record_problems(index: int, record, image_folder: Path, check_images: bool, image_cache: dict) -> List[str]:
    where = describe_record(index, record)
    if not isinstance(record, dict):
        return [
            f"{where}: is a {type(record).__name__}, not an object; each record is "
            '{"image": ..., "conversations": [...]}'
        ]
    problems = []
    conversations = record.get("conversations")
    if conversations is None:
        problems.append(
            f'{where}: field \'conversations\' is missing; add a list of turns [{{"from": "human", '
            '"value": "<image>\\n..."}, {"from": "gpt", "value": "..."}]'
        )
        conversations = []
    elif not isinstance(conversations, list) or not conversations:
        problems.append(f"{where}: field 'conversations' must be a non-empty list of turns, got {conversations!r:.60}")
        conversations = []
    tags, gpt_turns = 0, 0
    for turn_index, turn in enumerate(conversations):
        field = f"conversations[{turn_index}]"
        if not isinstance(turn, dict):
            problems.append(f"{where}: field '{field}' must be an object with 'from' and 'value', got {turn!r:.60}")
            continue
        role, value = turn.get("from"), turn.get("value")
        if "from" not in turn:
            problems.append(f"{where}: field '{field}.from' is missing; set it to 'human' or 'gpt'")
        elif role not in ROLES:
            problems.append(
                f"{where}: field '{field}.from' is {role!r}; XTuner knows only 'human' and 'gpt' "
                "(rename user -> human, assistant -> gpt)"
            )
        if "value" not in turn:
            problems.append(f"{where}: field '{field}.value' is missing; add the turn's text")
        elif not isinstance(value, str):
            problems.append(f"{where}: field '{field}.value' must be a string, got {type(value).__name__}")
        elif not _encodable(value):
            problems.append(
                f"{where}: field '{field}.value' holds a lone surrogate (a broken escape such as \\ud800); "
                "the tokenizer cannot encode it: fix or remove the character"
            )
        elif role in ROLES and role != ROLES[turn_index % 2]:
            problems.append(
                f"{where}: field '{field}.from' is {role!r}, but turns must alternate human, gpt, human, "
                f"... starting with human (XTuner drops a leading gpt turn and trains on nothing)"
            )
        elif role == "gpt":
            gpt_turns += 1
            if IMAGE_TAG in value:
                problems.append(
                    f"{where}: field '{field}.value' (a gpt turn) contains {IMAGE_TAG}; only human turns "
                    "may hold the image tag"
                )
            if not value.strip():
                problems.append(f"{where}: field '{field}.value' is an empty answer; write the answer or drop the turn")
        elif role == "human":
            tags += value.count(IMAGE_TAG)
    if conversations and gpt_turns == 0 and not any(p.startswith(where + ": field 'conversations[") for p in problems):
        problems.append(f"{where}: field 'conversations' has no gpt turn, so there is nothing to learn; add the answer")

    image = record_image(record)
    if image is None:
        if tags:
            problems.append(
                f"{where}: field 'conversations' has {tags} {IMAGE_TAG} tag(s) but the record has no "
                "'image'; add the image's path or remove the tags"
            )
        return problems
    if not isinstance(image, str) or not image:
        problems.append(
            f"{where}: field 'image' must be one path (a string relative to the image folder), got {image!r:.80}"
        )
        return problems
    if tags != 1:
        problems.append(
            f"{where}: field 'conversations' has {tags} {IMAGE_TAG} tags in its human turns; a record "
            f"with an image needs exactly one (XTuner puts all the image tokens in its place)"
        )
    path = Path(image_folder) / image
    if image not in image_cache:
        if not path.is_file():
            image_cache[image] = (
                f"field 'image' names {path}, which {_missing(path)}; check image_folder "
                f"({image_folder}) and the path, or drop the record"
            )
        elif check_images:
            try:
                open_rgb(path)
                image_cache[image] = None
            except (ImageLoadError, OSError) as error:
                image_cache[image] = f"field 'image': {error}; replace the file or drop the record"
        else:
            image_cache[image] = None
    if image_cache[image]:
        problems.append(f"{where}: {image_cache[image]}")
    return problems


def validate_xtuner_records(json_path, image_folder, check_images: bool = True) -> list:
    """The records of an XTuner InternVL/LLaVA-format file, or a DataError listing every problem found.

    Checks the JSON itself (line and column), that the top level is a list, each record's conversations
    (roles human/gpt, text values, at least one answer), exactly one <image> tag when the record has an
    image (none when it has none), that the image exists under image_folder and (check_images) decodes.
    """
    json_path = Path(json_path)
    image_folder = Path(image_folder)
    if not image_folder.is_dir():
        raise DataError(
            f"{json_path}: image folder {image_folder} does not exist; pass the folder the records' "
            "'image' paths are relative to (XTuner's image_folder)"
        )
    records = read_json_records(json_path)
    problems, image_cache = [], {}
    for index, record in enumerate(records):
        problems += _record_problems(index, record, image_folder, check_images, image_cache)
    raise_if_any(json_path, problems, f"{len(records)} records")
    return records


# ---- evaluation records ----------------------------------------------------------------------------
def _eval_problems(index: int, record) -> List[str]:
    where = describe_record(index, record)
    if not isinstance(record, dict):
        return [f"{where}: is a {type(record).__name__}, not an object"]
    problems = []
    for field in ("id", "image", "dish", "group", "split", "kind", "lang", "question", "answer", "answer_text"):
        if field not in record:
            problems.append(f"{where}: field '{field}' is missing; every evaluation record needs it")
        elif not isinstance(record[field], str) or not record[field].strip():
            problems.append(f"{where}: field '{field}' must be a non-empty string, got {record[field]!r:.60}")
    if problems:
        return problems
    if record["kind"] not in EVAL_KINDS:
        problems.append(
            f"{where}: field 'kind' is {record['kind']!r}; use 'mc' (four choices), 'open', or a "
            f"probe kind ({', '.join(PROBE_ANSWERS)})"
        )
    elif record["kind"] in PROBE_ANSWERS and record["answer"] not in PROBE_ANSWERS[record["kind"]]:
        problems.append(
            f"{where}: field 'answer' is {record['answer']!r}; for kind {record['kind']!r} it is one of "
            f"{', '.join(PROBE_ANSWERS[record['kind']])}"
        )
    if record["lang"] not in EVAL_LANGS:
        problems.append(f"{where}: field 'lang' is {record['lang']!r}; use 'zh' or 'en'")
    if IMAGE_TAG in record["question"]:
        problems.append(
            f"{where}: field 'question' contains {IMAGE_TAG}; store the question without it (the "
            "evaluation loop adds the image)"
        )
    if record["kind"] == "mc":
        choices = record.get("choices")
        if not isinstance(choices, list) or len(choices) != 4 or not all(isinstance(c, str) and c for c in choices):
            problems.append(
                f"{where}: field 'choices' must be a list of 4 non-empty strings for kind 'mc', got {choices!r:.80}"
            )
        elif record["answer"] not in LETTERS:
            problems.append(
                f"{where}: field 'answer' is {record['answer']!r}; for kind 'mc' it is the letter A, B, C or D"
            )
        elif choices[LETTERS.index(record["answer"])] != record["answer_text"]:
            problems.append(
                f"{where}: field 'answer_text' is {record['answer_text']!r} but choice "
                f"{record['answer']} is {choices[LETTERS.index(record['answer'])]!r}; make them agree"
            )
    elif record.get("choices") is not None:
        problems.append(
            f"{where}: field 'choices' is set on an {record['kind']!r} record; remove it or set kind to 'mc'"
        )
    return problems


def load_eval_records(path, image_folder=None) -> list:
    """Evaluation records (the kit's schema, see course_lib.kit_food_set), or a DataError listing the problems.

    With image_folder, also checks that every image exists there (without decoding it).
    """
    path = Path(path)
    records = read_json_records(path)
    problems, seen = [], {}
    for index, record in enumerate(records):
        found = _eval_problems(index, record)
        problems += found
        record_id = record.get("id") if isinstance(record, dict) else None
        if isinstance(record_id, str):
            if record_id in seen:
                problems.append(
                    f"{describe_record(index, record)}: field 'id' repeats record {seen[record_id]}; ids must be "
                    "unique (results are matched to records by id)"
                )
            seen.setdefault(record_id, index)
        if found:
            continue
        picture = Path(image_folder) / record["image"] if image_folder is not None else None
        if picture is not None and not picture.is_file():
            problems.append(
                f"{describe_record(index, record)}: field 'image' names {picture}, "
                f"which {_missing(picture)}; check the image folder"
            )
    raise_if_any(path, problems, f"{len(records)} evaluation records")
    return records
