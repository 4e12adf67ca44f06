"""The food demo: chat with InternVL2 about a dish photo, in the browser.

    python -m course_lib.serving.gradio_app [--model PATH] [--compare PATH] [--port N] [--share]

or, in a notebook, `demo = build_demo(engine)` then `launch_inline(demo)` (and `demo.close()` when done).

* Chat: upload a photo (or pick an example; they are grouped by cuisine), ask, get the answer streamed;
  follow-up questions keep the conversation; "Clear context" starts a new one.
* Generation settings: LMDeploy's GenerationConfig knobs, plus the tile budget per image (max_dynamic_patch).
* Side by side: the same question to two checkpoints, e.g. before and after fine-tuning.

Safe defaults: binds 127.0.0.1, no public share link unless --share, uploads limited in size, a broken
image becomes a message in the chat, several users are queued (`demo.queue`). The handlers are plain
(synchronous) generators: Gradio runs them in worker threads, never on its own event loop, so an engine
with its own asyncio loop (LMDeploy's pipeline) is never driven from Gradio's loop (lmdeploy#2101).
"""

import argparse
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import gradio as gr

from ..config import resolve
from ..food_artwork import EMOJI_DIR, dishes
from ..i18n import later, tr
from ..tiling import ImageLoadError
from .backends import BACKENDS, make_engine
from .engine import ContextTooLong, Engine, GenerationSettings, Session, open_image
from .server_process import free_port

# Gradio 6.17's own routes touch a constant that Starlette deprecated; nothing to act on, so keep it quiet.
warnings.filterwarnings("ignore", message=".*HTTP_422_UNPROCESSABLE_ENTITY.*")

MAX_FILE_SIZE = "10mb"
DEFAULT_QUESTION = later("图中的菜是什么？What dish is this?")  # in Chinese: the lecture's question alone
# The gallery's tabs: the cuisines of the dish index (kit_food_set's dishes.json), shown through tr().
CUISINES = (
    later("American"),
    later("Chinese"),
    later("Chinese-American"),
    later("French"),
    later("Italian"),
    later("Japanese"),
    later("Other"),
)
CONCURRENCY = 4


def gallery_groups() -> Dict[str, List[Tuple[str, str]]]:
    """cuisine -> [(image file, caption)] for every dish in the index, cuisines in alphabetical order."""
    groups = defaultdict(list)
    for file, info in dishes().items():
        caption = f"{info.get('emoji', '')} {info['zh']} · {info['en']}".strip()
        groups[info.get("cuisine") or "Other"].append((str(EMOJI_DIR / file), caption))
    return {cuisine: groups[cuisine] for cuisine in sorted(groups)}


def settings_from_controls(
    max_new_tokens, do_sample, temperature, top_p, top_k, repetition_penalty
) -> GenerationSettings:
    return GenerationSettings(
        max_new_tokens=int(max_new_tokens),
        do_sample=bool(do_sample),
        temperature=float(temperature),
        top_p=float(top_p),
        top_k=int(top_k),
        repetition_penalty=float(repetition_penalty),
    )


def _image_error(error: Exception, path: str) -> str:
    message = str(error).replace(str(Path(path).parent) + "/", "")  # the upload's temp folder is noise
    return "⚠️ " + tr("I could not read that image: {message}", message=message)


def _read(message) -> Tuple[str, Optional[str]]:
    message = message or {}
    files = message.get("files") or []
    return (message.get("text") or "").strip(), (files[0] if files else None)


def _answer_into(engine: Engine, history: list, question: str, image, session: Session, settings, max_tiles):
    """Stream one answer into the last (assistant) message of history; errors become that message."""
    history.append({"role": "assistant", "content": ""})
    try:
        for piece in engine.stream(question, image, session=session, settings=settings, max_tiles=max_tiles):
            history[-1] = {"role": "assistant", "content": history[-1]["content"] + piece}
            yield history
    except ContextTooLong as error:
        history[-1] = {"role": "assistant", "content": f"⚠️ {error}"}
        yield history
    if not history[-1]["content"]:
        history[-1] = {"role": "assistant", "content": tr("(empty answer)")}
        yield history


def build_demo(
    engine: Engine,
    compare_engine: Optional[Engine] = None,
    settings: Optional[GenerationSettings] = None,
    concurrency: int = CONCURRENCY,
) -> gr.Blocks:
    """The Blocks app around one engine (and a second one for the side-by-side tab)."""
    defaults = settings or GenerationSettings(max_new_tokens=256)
    checkpoint_max = getattr(engine, "tiling", {}).get("max_num", 12)

    # delete_cache: uploads older than an hour are removed every hour (a demo serves many strangers).
    with gr.Blocks(title=tr("InternVL2 food chat"), analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        gr.Markdown(
            "# 🍜 "
            + tr("Food chat with InternVL2")
            + "\n"
            + tr(
                "Model **{model}** on the **{backend}** backend. Pick an example or upload a photo, ask, follow up; "
                "*Clear context* starts over.",
                model=engine.label,
                backend=engine.backend,
            )
        )
        with gr.Accordion(tr("Why this backend?"), open=False):
            gr.Markdown("\n".join(f"* {reason}" for reason in engine.why) or "* " + tr("chosen by the caller"))
        session = gr.State(None)  # the engine's Session: the conversation the model sees
        shown = gr.State([])  # the chat as displayed (errors included)
        with gr.Tab(tr("Chat"), id="chat"):
            with gr.Row():
                with gr.Column(scale=3):
                    chatbot = gr.Chatbot(label=tr("Chat"), height=470, elem_id="chat", feedback_options=None)
                    box = gr.MultimodalTextbox(
                        placeholder=tr("Ask about a dish; attach a food photo or pick an example"),
                        file_types=["image"],
                        file_count="single",
                        sources=["upload"],
                        show_label=False,
                        elem_id="question",
                    )
                    with gr.Row():
                        send = gr.Button(tr("Send"), variant="primary", elem_id="send")
                        clear = gr.Button(tr("Clear context"), elem_id="clear")
                with gr.Column(scale=2):
                    gr.Markdown("### " + tr("Examples by cuisine"))
                    galleries = []
                    with gr.Tabs(elem_id="examples"):
                        for cuisine, items in gallery_groups().items():
                            with gr.Tab(f"{tr(cuisine)} ({len(items)})"):
                                galleries.append(
                                    gr.Gallery(
                                        value=items,
                                        label=cuisine,
                                        show_label=False,
                                        columns=4,
                                        height=230,
                                        allow_preview=False,
                                        object_fit="contain",
                                    )
                                )
                    with gr.Accordion(tr("Generation settings"), open=True, elem_id="settings"):
                        with gr.Row():
                            max_new_tokens = gr.Slider(
                                8, 1024, value=defaults.max_new_tokens, step=8, label="max_new_tokens"
                            )
                            max_tiles = gr.Slider(
                                1, 24, value=checkpoint_max, step=1, label=tr("max tiles per image (max_dynamic_patch)")
                            )
                        do_sample = gr.Checkbox(value=defaults.do_sample, label=tr("do_sample (off = greedy decoding)"))
                        with gr.Row():
                            temperature = gr.Slider(
                                0.05, 2.0, value=defaults.temperature, step=0.05, label="temperature"
                            )
                            top_p = gr.Slider(0.05, 1.0, value=defaults.top_p, step=0.05, label="top_p")
                        with gr.Row():
                            top_k = gr.Slider(0, 100, value=defaults.top_k, step=1, label=tr("top_k (0 = all)"))
                            repetition_penalty = gr.Slider(
                                1.0, 2.0, value=defaults.repetition_penalty, step=0.05, label="repetition_penalty"
                            )
        controls = [max_new_tokens, do_sample, temperature, top_p, top_k, repetition_penalty]

        def pick_example(message, evt: gr.SelectData):
            text, _ = _read(message)
            return {"text": text or tr(DEFAULT_QUESTION), "files": [evt.value["image"]["path"]]}

        def respond(
            message, shown, state, max_tiles, max_new_tokens, do_sample, temperature, top_p, top_k, repetition_penalty
        ):
            """The chat's messages live in server-side state (per browser tab or API client), not in the request."""
            question, image_path = _read(message)
            history = list(shown or [])
            if not question and not image_path:
                yield history, message, history, state
                return
            question = question or DEFAULT_QUESTION
            if image_path:
                history.append({"role": "user", "content": {"path": image_path}})
            history.append({"role": "user", "content": question})
            try:
                image = open_image(image_path)
            except (ImageLoadError, FileNotFoundError) as error:
                history.append({"role": "assistant", "content": _image_error(error, image_path)})
                yield history, None, history, state
                return
            state = state if state is not None else Session()
            settings = settings_from_controls(max_new_tokens, do_sample, temperature, top_p, top_k, repetition_penalty)
            for history in _answer_into(engine, history, question, image, state, settings, int(max_tiles)):
                yield history, None, history, state

        def clear_context():
            return [], None, [], None

        for gallery in galleries:
            gallery.select(pick_example, [box], [box], api_visibility="private")
        inputs = [box, shown, session, max_tiles, *controls]
        outputs = [chatbot, box, shown, session]
        send.click(respond, inputs, outputs, api_name="send")
        box.submit(respond, inputs, outputs, api_visibility="private")
        clear.click(clear_context, None, outputs, api_name="clear")

        if compare_engine is not None:
            with gr.Tab(tr("Side by side"), id="compare"):
                gr.Markdown(
                    tr(
                        "The same question and photo to two checkpoints (e.g. before and after fine-tuning). "
                        "Each answer is a fresh single-turn conversation."
                    )
                )
                compare_box = gr.MultimodalTextbox(
                    placeholder=tr("A question and a food photo for both models"),
                    file_types=["image"],
                    file_count="single",
                    sources=["upload"],
                    show_label=False,
                    elem_id="compare-question",
                )
                ask_both = gr.Button(tr("Ask both"), variant="primary", elem_id="ask-both")
                with gr.Row():
                    left = gr.Chatbot(label=f"A: {engine.label}", height=320, elem_id="answer-a", feedback_options=None)
                    right = gr.Chatbot(
                        label=f"B: {compare_engine.label}", height=320, elem_id="answer-b", feedback_options=None
                    )

            def compare(message, max_tiles, max_new_tokens, do_sample, temperature, top_p, top_k, repetition_penalty):
                question, image_path = _read(message)
                if not question and not image_path:  # nothing asked: as the chat tab, answer nothing
                    yield [], []
                    return
                question = question or DEFAULT_QUESTION
                asked = ([{"role": "user", "content": {"path": image_path}}] if image_path else []) + [
                    {"role": "user", "content": question}
                ]
                try:
                    image = open_image(image_path)
                except (ImageLoadError, FileNotFoundError) as error:
                    failed = asked + [{"role": "assistant", "content": _image_error(error, image_path)}]
                    yield failed, failed
                    return
                settings = settings_from_controls(
                    max_new_tokens, do_sample, temperature, top_p, top_k, repetition_penalty
                )
                a = list(asked)
                for a in _answer_into(engine, list(asked), question, image, Session(), settings, int(max_tiles)):
                    yield a, list(asked)
                for b in _answer_into(
                    compare_engine, list(asked), question, image, Session(), settings, int(max_tiles)
                ):
                    yield a, b

            ask_both.click(compare, [compare_box, max_tiles, *controls], [left, right], api_name="compare")
            for gallery in galleries:
                gallery.select(pick_example, [compare_box], [compare_box], api_visibility="private")
    demo.queue(default_concurrency_limit=concurrency)
    return demo


def launch(
    demo: gr.Blocks,
    host: str = "127.0.0.1",
    port: Optional[int] = None,
    share: bool = False,
    inline: bool = False,
    max_file_size=MAX_FILE_SIZE,
    block: bool = False,
    height: int = 800,
    quiet: bool = True,
) -> str:
    """Start the app (in the background unless block=True); returns its local URL."""
    demo.launch(
        server_name=host,
        server_port=port or free_port(host),
        share=share,
        inline=inline,
        max_file_size=max_file_size,
        prevent_thread_lock=not block,
        allowed_paths=[str(EMOJI_DIR)],
        quiet=quiet,
        show_error=True,
        height=height,
    )
    return demo.local_url


def launch_inline(demo: gr.Blocks, height: int = 800, **kwargs) -> str:
    """Launch on 127.0.0.1 and show the app in the notebook's output cell."""
    return launch(demo, inline=True, height=height, **kwargs)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m course_lib.serving.gradio_app", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--model", type=Path, help="checkpoint folder (default: the course setup's model)")
    parser.add_argument("--compare", type=Path, help="a second checkpoint for the side-by-side tab")
    parser.add_argument("--backend", default="auto", choices=list(BACKENDS))
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback only)")
    parser.add_argument("--port", type=int, help="port (default: a free one)")
    parser.add_argument("--share", action="store_true", help="also create a public gradio.live link")
    parser.add_argument("--max-file-size", default=MAX_FILE_SIZE, help="largest upload, e.g. 10mb")
    args = parser.parse_args(argv)

    setup = resolve()
    engine = make_engine(setup, args.backend, model_path=args.model)
    compare_engine = make_engine(setup, args.backend, model_path=args.compare) if args.compare else None
    print(engine.describe())
    demo = build_demo(engine, compare_engine)
    port = args.port or free_port(args.host)
    print(tr("Open http://{host}:{port}/  (Ctrl+C to stop)", host=args.host, port=port))
    launch(demo, args.host, port, args.share, max_file_size=args.max_file_size, block=True, quiet=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
