"""The food demo in a real browser: headless Chromium picks an example from the gallery, sends it, waits for the
course model's streamed answer and takes a screenshot (kept in build/test-artefacts: gradio_demo.png, and
gradio_demo_zh.png for `make demo LANG=zh`); every character on the page must be drawn with a glyph (no boxes for
emoji or Chinese), and its rendered page must show the chat, the example gallery by cuisine, the settings and the
buttons."""

import base64
import os
import subprocess
import time

import pytest
from browser import CHROMIUM, FLAGS, HEIGHT, MISSING_GLYPHS_JS, WIDTH, Browser
from conftest import REPO_ROOT
from PIL import Image, ImageStat

from course_lib.serving import GenerationSettings
from course_lib.serving.gradio_app import DEFAULT_QUESTION, build_demo, gallery_groups, launch
from course_lib.serving.transformers_backend import TransformersEngine

ARTEFACTS = REPO_ROOT / "build" / "test-artefacts"

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="no headless browser: apt-get install chromium"),
    pytest.mark.filterwarnings("ignore:'HTTP_422_UNPROCESSABLE_ENTITY' is deprecated"),
]


@pytest.fixture(scope="module")
def course_engine():
    """The course model (assets/course-model), the checkpoint a student's demo answers with in tiny mode."""
    import torch

    from course_lib.course_model import SHIPPED_DIR
    from course_lib.models import load_internvl

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield TransformersEngine(*load_internvl(SHIPPED_DIR, "cpu"), model_path=SHIPPED_DIR)
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def url(course_engine):
    demo = build_demo(course_engine, course_engine, settings=GenerationSettings(max_new_tokens=24))
    yield launch(demo)
    demo.close()


def ask_first_example_and_screenshot(url, png, profile, question):
    """Pick the gallery's first example, send it, wait for the answer; save a screenshot. Returns (answer, the
    characters drawn as missing-glyph boxes)."""
    png.parent.mkdir(parents=True, exist_ok=True)
    png.unlink(missing_ok=True)
    browser = Browser(profile)
    try:
        browser.call(
            "Emulation.setDeviceMetricsOverride", width=WIDTH, height=HEIGHT, deviceScaleFactor=1, mobile=False
        )
        browser.call("Page.navigate", url=url)
        first_cuisine = next(iter(gallery_groups().values()))
        assert browser.wait_for("document.querySelectorAll('.thumbnail-item').length") == len(first_cuisine)
        browser.js("document.querySelectorAll('.thumbnail-item')[0].click()")  # the first example...
        picked = browser.wait_for("(document.querySelector('#question img') || {}).src || ''")
        assert picked.endswith(os.path.basename(first_cuisine[0][0]))  # ...lands in the question box
        assert browser.js("document.querySelector('#question textarea').value") == question
        browser.js("document.querySelector('#send').click()")
        answer = browser.wait_for("[...document.querySelectorAll('#chat .bot')].map(b => b.innerText).join('')")
        assert browser.wait_for("document.querySelectorAll('#chat img').length")  # the picture is in the chat
        time.sleep(1.0)  # let the last streamed piece render
        answer = browser.js("[...document.querySelectorAll('#chat .bot')].map(b => b.innerText).join('')")
        boxes = browser.js(MISSING_GLYPHS_JS)
        png.write_bytes(base64.b64decode(browser.call("Page.captureScreenshot", format="png")["data"]))
    finally:
        browser.close()
    image = Image.open(png).convert("RGB")
    assert image.size == (WIDTH, HEIGHT)
    assert max(ImageStat.Stat(image).stddev) > 20, "the screenshot is blank"
    assert len(image.getcolors(maxcolors=1 << 20) or []) > 500  # pictures and text, not a flat page
    orange = sum(1 for r, g, b in image.getdata() if r > 230 and 100 < g < 150 and b < 60)
    assert orange > 2000, "the primary (orange) Send button is not visible"
    return answer, boxes


def assert_every_glyph_drawn(boxes):
    """No character on the page drawn as an empty box. Where the emoji font is missing outside CI (a developer's
    machine; scripts/system-deps.sh installs it as root), only the emoji may be boxes."""
    import subprocess as sp

    has_emoji_font = "emoji" in sp.run(["fc-list"], capture_output=True, text=True).stdout.lower()
    if not has_emoji_font and not os.environ.get("CI"):
        boxes = [ch for ch in boxes if ord(ch) < 0x1F000 and not 0x2600 <= ord(ch) < 0x2800]
    assert not boxes, f"drawn as empty boxes (a font is missing: scripts/system-deps.sh): {boxes}"


def _dish_names():
    from course_lib.food_artwork import dishes

    return {name.lower() for info in dishes().values() for name in (info["zh"], info["en"])}


@pytest.mark.timeout(300)
def test_pick_an_example_ask_and_screenshot(url, tmp_path):
    answer, boxes = ask_first_example_and_screenshot(
        url, ARTEFACTS / "gradio_demo.png", tmp_path / "profile", DEFAULT_QUESTION
    )
    assert any(name in answer.lower() for name in _dish_names()), f"the course model named no dish: {answer!r}"
    assert_every_glyph_drawn(boxes)


@pytest.mark.timeout(300)
def test_the_demo_in_chinese(course_engine, tmp_path, monkeypatch):
    """make demo LANG=zh: the labels, buttons and default question are Chinese, and the course model answers."""
    from course_lib.zh import ZH

    monkeypatch.setenv("COURSE_LANG", "zh")
    demo = build_demo(course_engine, course_engine, settings=GenerationSettings(max_new_tokens=24))
    url = launch(demo)
    try:
        answer, boxes = ask_first_example_and_screenshot(
            url, ARTEFACTS / "gradio_demo_zh.png", tmp_path / "profile", ZH[DEFAULT_QUESTION]
        )
        dom = subprocess.run(
            [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'dom'}", "--virtual-time-budget=10000", "--dump-dom", url],
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
    finally:
        demo.close()
    assert any(name in answer.lower() for name in _dish_names()), f"the course model named no dish: {answer!r}"
    assert_every_glyph_drawn(boxes)
    for english in ["Send", "Clear context", "Generation settings", "Side by side", "Examples by cuisine"]:
        assert ZH[english] in dom, f"{ZH[english]!r} ({english}) is not on the Chinese page"
    assert ">Send<" not in dom and "Examples by cuisine" not in dom


def test_rendered_page_has_the_chat_gallery_settings_and_buttons(url, course_engine, tmp_path):
    done = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    dom = done.stdout
    assert done.returncode == 0 and "<gradio-app" in dom, done.stderr[-2000:]
    for text in [
        "Food chat with InternVL2",
        'id="chat"',
        "Examples by cuisine",
        "Generation settings",
        "max_new_tokens",
        "temperature",
        "top_p",
        "top_k",
        "repetition_penalty",
        "do_sample",
        "max tiles per image",
        ">Send<",
        "Clear context",
        "Side by side",
        course_engine.label,
    ]:
        assert text in dom, f"{text!r} is not on the page"
    for cuisine, items in gallery_groups().items():
        assert f"{cuisine} ({len(items)})" in dom, f"no example tab for {cuisine}"
