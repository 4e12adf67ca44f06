"""Talking to LMDeploy's api_server with the OpenAI client: messages with base64 images, per-image tiles, streaming.

Message building is pure (tested everywhere); `ask`/`stream` need a server. `answer_locally` answers the very
same request dict with an Engine, so the calls can be shown on a machine without LMDeploy.

    messages = chat_messages("What dish is this?", image, max_dynamic_patch=4)
    request = completion_request(model, messages, GenerationSettings(max_new_tokens=64))
    client.chat.completions.create(**request)      # on a server
    answer_locally(engine, request)                 # here, same request
"""

import base64
import binascii
import io
import json
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple, Union

from PIL import Image

from ..internvl_format import STOP_WORDS
from ..tiling import ImageLoadError, open_rgb
from .engine import Engine, GenerationSettings, Session, Turn, make_turn

ImageLike = Union[str, Path, Image.Image]


def image_data_url(image: ImageLike, format: str = "PNG", quality: int = 90) -> str:
    """A path or PIL image -> "data:image/png;base64,...": the picture as tiling.open_rgb reads it (upright RGB,
    transparency on white), losslessly, so the server tiles exactly the pixels the transformers backend does
    (the one image rule). format="JPEG" (at `quality`) makes smaller requests with slightly other pixels."""
    rgb = open_rgb(image)
    buffer = io.BytesIO()
    options = {"quality": quality} if format.upper() == "JPEG" else {}
    rgb.save(buffer, format=format, **options)
    return f"data:image/{format.lower()};base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}"


def image_from_data_url(url: str) -> Image.Image:
    """The inverse of image_data_url (for answering requests locally)."""
    header, _, payload = url.partition(",")
    if not (header.startswith("data:image/") and header.endswith(";base64")):
        raise ImageLoadError(f"not a base64 image data URL: {url[:40]!r}...")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as error:
        raise ImageLoadError(f"the data URL's base64 payload is corrupt ({error})") from error
    try:
        return open_rgb(Image.open(io.BytesIO(data)))
    except (OSError, Image.DecompressionBombError) as error:
        raise ImageLoadError(f"the data URL does not hold a readable image ({error})") from error


def image_part(
    image: ImageLike, max_dynamic_patch: Optional[int] = None, detail: Optional[str] = None, format: str = "PNG"
) -> dict:
    """{"type": "image_url", "image_url": {"url": data URL, "max_dynamic_patch": n}}: LMDeploy reads the
    extra key per image (or `detail` low/medium/high = 6/12/24 tiles)."""
    is_url = isinstance(image, str) and image.startswith(("data:", "http://", "https://"))  # else a local file
    url = {"url": image if is_url else image_data_url(image, format)}
    if max_dynamic_patch is not None:
        url["max_dynamic_patch"] = int(max_dynamic_patch)
    if detail is not None:
        url["detail"] = detail
    return {"type": "image_url", "image_url": url}


def user_message(question: str, images: Sequence[ImageLike] = (), max_dynamic_patch: Optional[int] = None) -> dict:
    """A user message: images first (where InternVL2 puts `<image>`), then the question."""
    content = [image_part(image, max_dynamic_patch) for image in images]
    return {"role": "user", "content": content + [{"type": "text", "text": question}]}


def chat_messages(
    question: str,
    image: Optional[ImageLike] = None,
    history: Sequence[Tuple] = (),
    max_dynamic_patch: Optional[int] = None,
    system: Optional[str] = None,
) -> List[dict]:
    """A whole conversation: optional system prompt, earlier (question, image or None, answer) turns, this turn."""
    messages = [{"role": "system", "content": system}] if system else []
    for old_question, old_image, old_answer in history:
        messages.append(user_message(old_question, [old_image] if old_image is not None else [], max_dynamic_patch))
        messages.append({"role": "assistant", "content": old_answer})
    messages.append(user_message(question, [image] if image is not None else [], max_dynamic_patch))
    return messages


def completion_request(
    model: str,
    messages: List[dict],
    settings: Optional[GenerationSettings] = None,
    stream: bool = False,
    stop: Sequence[str] = STOP_WORDS,
) -> dict:
    """Keyword arguments for client.chat.completions.create(**request)."""
    request = {"model": model, "messages": messages, **(settings or GenerationSettings()).to_openai(stop)}
    if stream:
        request["stream"] = True
    return request


def request_size(request: dict) -> int:
    """Bytes of the request's JSON body (base64 images are most of it: about 4/3 of the encoded picture)."""
    return len(json.dumps(request).encode("utf-8"))


# ---- on a server ---------------------------------------------------------------------------------
def make_client(base_url: str, api_key: str = "none", timeout: float = 600):
    """An openai.OpenAI client for an api_server at base_url (http://127.0.0.1:PORT)."""
    from openai import OpenAI

    return OpenAI(base_url=base_url.rstrip("/") + "/v1", api_key=api_key, timeout=timeout)


def ask(client, request: dict) -> str:
    request = dict(request, stream=False)
    return client.chat.completions.create(**request).choices[0].message.content


def stream(client, request: dict) -> Iterator[str]:
    """The answer's text deltas as the server sends them."""
    for chunk in client.chat.completions.create(**dict(request, stream=True)):
        if chunk.choices and chunk.choices[0].delta.content:
            yield chunk.choices[0].delta.content


# ---- the same request, answered by a local engine --------------------------------------------------
def _turn_from_message(message: dict) -> Turn:
    content = message["content"]
    if isinstance(content, str):
        return make_turn(content)
    texts, images, tiles = [], [], None
    for part in content:
        if part["type"] == "text":
            texts.append(part["text"])
        elif part["type"] == "image_url":
            url = part["image_url"] if isinstance(part["image_url"], dict) else {"url": part["image_url"]}
            images.append(image_from_data_url(url["url"]))
            tiles = url.get("max_dynamic_patch", tiles)
        else:
            raise ValueError(f"unsupported content part {part['type']!r}")
    if len(images) > 1:
        raise ValueError("answer_locally handles one image per message")
    turn = make_turn("\n".join(texts), None, tiles)
    turn.image = images[0] if images else None
    return turn


def settings_from_request(request: dict) -> GenerationSettings:
    """The GenerationSettings a completion_request was made from."""
    extra = request.get("extra_body", {})
    top_k = extra.get("top_k", 50)
    greedy = top_k == 1
    values = dict(
        max_new_tokens=request.get("max_completion_tokens") or request.get("max_tokens") or 512, do_sample=not greedy
    )
    if not greedy:
        values.update(
            temperature=request.get("temperature", 0.8),
            top_p=request.get("top_p", 1.0),
            top_k=top_k,
            repetition_penalty=extra.get("repetition_penalty", 1.0),
        )
    return GenerationSettings(**values)


def answer_locally(engine: Engine, request: dict) -> str:
    """Answer an OpenAI-style request dict with an Engine (same messages, images, tiles and settings)."""
    messages = request["messages"]
    if any(m["role"] == "system" for m in messages):
        raise ValueError("answer_locally uses the checkpoint's own system message; leave the system message out")
    if not messages or messages[-1]["role"] != "user":
        raise ValueError("the last message must be the user's")
    session = Session()
    for message, reply in zip(messages[:-1:2], messages[1:-1:2]):
        turn = _turn_from_message(message)
        turn.answer = reply["content"]
        session.turns.append(turn)
    turn = _turn_from_message(messages[-1])
    return engine.chat(
        turn.question, turn.image, session=session, settings=settings_from_request(request), max_tiles=turn.max_tiles
    ).response.text
