"""InternVL2's prompt format, in one place: the special tokens, the image tag and how it is expanded, the turn
separator that ends an answer, and the internlm2-chat layout written out for the lessons.

Sources: InternVL2's `modeling_internvl_chat.py` (`chat`, `batch_chat`: an image question starts with
`<image>\\n`, each `<image>` becomes `<img>` + `<IMG_CONTEXT>` x num_image_token x tiles + `</img>`) and its
`conversation.py` (template "internlm2-chat": `<|im_start|>role\\n...<|im_end|>`, no newline between turns).
The serving engine builds real prompts from the checkpoint's own conversation template (course_lib.checkpoints);
these strings are what that template writes for InternVL2, and tests/test_connectors.py checks that they agree
with the tiny checkpoint. The checkpoint's remote code keeps its own copy: it must load without course_lib.

It imports nothing, so the tiny model's source hash (course_lib.tiny_internvl2.build) can cover it.
"""

from typing import Sequence

IMG_START_TOKEN = "<img>"
IMG_END_TOKEN = "</img>"
IMG_CONTEXT_TOKEN = "<IMG_CONTEXT>"  # one per image token: 256 per 448x448 tile after pixel shuffle
IMAGE_TAG = "<image>"  # what a question or a training record writes where the picture goes
SEPARATOR = "<|im_end|>"  # internlm2-chat's end of a turn: generation stops there (lmdeploy#2120)
STOP_WORDS = [SEPARATOR]
# The single-turn prompt chat() builds (system line, the user's turn, the assistant's header).
INTERNLM2_CHAT = "<|im_start|>system\n{system}<|im_end|><|im_start|>user\n{question}<|im_end|><|im_start|>assistant\n"


def with_image_tag(question: str) -> str:
    """The human turn with its picture: the image first, then the question (InternVL2's chat, XTuner's records)."""
    return IMAGE_TAG + "\n" + question


def image_tokens(num_patches: int, num_image_token: int = 256) -> str:
    """The string that stands for one image of num_patches tiles in an InternVL2 prompt."""
    return IMG_START_TOKEN + IMG_CONTEXT_TOKEN * (num_image_token * num_patches) + IMG_END_TOKEN


def expand_image_tags(query: str, num_patches_list: Sequence[int], num_image_token: int = 256) -> str:
    """Each `<image>` of query, in order, replaced by the tokens of its image's tiles."""
    if query.count(IMAGE_TAG) < len(num_patches_list):
        raise ValueError(f"{query.count(IMAGE_TAG)} {IMAGE_TAG} tags for {len(num_patches_list)} images")
    for num_patches in num_patches_list:
        query = query.replace(IMAGE_TAG, image_tokens(num_patches, num_image_token), 1)
    return query
