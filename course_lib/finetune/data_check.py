"""What XTuner will train on, checked before a run starts: the pictures it opens and the tokens it learns from.

course_lib.vqa_data.validate_xtuner_records checks a training file's shape (roles, tags, images that exist
and decode). Two things it cannot see depend on the run itself, and new_run checks them here:

- **Pictures.** XTuner's dataset opens a picture with a plain ``convert("RGB")``. The rest of the kit (the
  validator, evaluation, both serving backends, the lessons) opens it with ``tiling.open_rgb``: EXIF
  orientation applied, transparency flattened onto white, 16-bit greyscale scaled. A phone photo stored
  sideways would be trained sideways and served upright. So the kit's rule holds in training too: a picture
  that the two readings see differently is written, as open_rgb reads it, into the run folder
  (``normalised-images/``), and the run trains on a copy of the records that points there. The user's files
  are never changed.
- **Tokens.** XTuner tokenizes each record with the run's tokenizer, chat template and ``max_length``, and cuts
  what is longer. A question so long that nothing of the answer is left, or an ``<image>`` tag so far in that
  its image tokens are cut off, trains on nothing (or on text without its picture) with only a log line.
  check_tokens builds the run's own XTuner dataset from the run's config and asks it how each record comes
  out, so the check cannot drift from what training does.
"""

import copy
import json
import os
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Tuple

from PIL import Image

from course_lib.tiling import open_rgb, plain_reading_differs, plan_tiles
from course_lib.vqa_data import describe_record, raise_if_any, record_image

NORMALISED_DIR = "normalised-images"
RECORDS_FILE = "train_records.json"
QUIET_LOGGER = "course-kit-data-check"


def normalise_images(records: List[dict], image_folder: Path, run_dir: Path) -> Tuple[Optional[Path], Dict[str, str]]:
    """(the records file the run trains on, or None for the user's own; {image path: why it was normalised}).

    Pictures that a plain convert("RGB") reads differently from open_rgb are saved (PNG, as open_rgb reads
    them) under run_dir/normalised-images/, and a copy of the records, run_dir/train_records.json, points at
    them by absolute path (XTuner joins image_folder with a record's path; an absolute path stays itself).
    When no picture differs nothing is written; nothing outside run_dir is ever written.
    """
    copies: Dict[str, Optional[str]] = {}  # image path in the records -> its normalised copy, or None
    reasons: Dict[str, str] = {}
    for record in records:
        image = record_image(record)
        if isinstance(image, str) and image not in copies:
            copies[image] = None
            reason = plain_reading_differs(Path(image_folder) / image)
            if reason:
                target = Path(run_dir) / NORMALISED_DIR / f"{len(reasons):05d}-{Path(image).stem}.png"
                target.parent.mkdir(parents=True, exist_ok=True)
                open_rgb(Path(image_folder) / image).save(target)
                copies[image], reasons[image] = str(target.resolve()), reason
    if not reasons:
        return None, reasons
    trained_on = [dict(r, image=copies[record_image(r)]) if copies.get(record_image(r)) else r for r in records]
    path = Path(run_dir) / RECORDS_FILE
    path.write_text(json.dumps(trained_on, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return path.resolve(), reasons


class TokenCheck(NamedTuple):
    records: int  # how many records were checked
    system_message: str  # the system line XTuner's dataset writes before every first turn
    longest: int  # tokens in the longest sample after the cut (the memory pre-flight's sequence length)


def check_tokens(config_file: Path) -> TokenCheck:
    """Tokenize every record as the run's XTuner dataset will; a DataError lists the records that would train
    on nothing or lose their picture. Also says which system line XTuner trains with: InternVL_V1_5_Dataset
    fixes it per language model (for InternLM2 "You are an AI assistant whose name is InternLM (书生·浦语)."),
    whatever the checkpoint's own default is; the conversion writes it into the fine-tuned config."""
    from mmengine.config import Config
    from mmengine.logging import MMLogger
    from xtuner.registry import BUILDER
    from xtuner.utils import IGNORE_INDEX

    config = Config.fromfile(str(config_file))
    # XTuner's dataset logs every file it reads and every cut to mmengine's current logger (stdout by default);
    # a logger of warnings only keeps a lesson's output to what matters. Training logs in its own process.
    if not MMLogger.check_instance_created(QUIET_LOGGER):
        MMLogger.get_instance(QUIET_LOGGER, log_level="WARNING")
    dataset = BUILDER.build(config.train_dataloader.dataset)
    context_id = dataset.tokenizer.convert_tokens_to_ids(dataset.IMG_CONTEXT_TOKEN)
    max_length = dataset.max_length
    problems, longest = [], 0
    for index, (record, folder) in enumerate(zip(dataset.data, dataset.image_folder)):
        image, image_tokens, token_str = record_image(record), 0, None
        if image is not None:
            with Image.open(os.path.join(folder, image)) as picture:  # the size XTuner tiles (no EXIF turn)
                size = picture.size
            tiles = plan_tiles(
                *size, dataset.min_dynamic_patch, dataset.max_dynamic_patch, dataset.image_size, dataset.use_thumbnail
            ).tiles
            image_tokens = tiles * dataset.patch_token
            token_str = dataset.IMG_START_TOKEN + dataset.IMG_CONTEXT_TOKEN * image_tokens + dataset.IMG_END_TOKEN
        tokens = dataset.get_inputid_labels(copy.deepcopy(record["conversations"]), token_str)
        longest = max(longest, len(tokens["input_ids"]))
        where = describe_record(index, record)
        if not any(label != IGNORE_INDEX for label in tokens["labels"]):
            problems.append(
                f"{where}: after cutting to max_length = {max_length} tokens no answer token is left to "
                "learn from (the image and the questions fill it); shorten the question, use a smaller "
                "picture (fewer tiles) or raise max_length"
            )
        elif image_tokens and tokens["input_ids"].count(context_id) != image_tokens:
            problems.append(
                f"{where}: its {image_tokens} image tokens do not fit in max_length = {max_length} "
                "(text before the <image> tag pushes them past the cut), so it would train without "
                "its picture; put <image> at the start of the first question or shorten the text"
            )
    raise_if_any(
        Path(config.data_path),
        problems,
        f"{len(dataset.data)} records under this run's tokenizer, chat template and max_length",
    )
    return TokenCheck(len(dataset.data), dataset._system, longest)
