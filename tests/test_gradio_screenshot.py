"""The food demo in a real browser: headless Chromium picks an example from the gallery, sends it, waits for the
streamed answer and takes a screenshot (kept in build/test-artefacts); its rendered page must show the chat, the
example gallery by cuisine, the settings and the buttons. Chromium is driven through its DevTools protocol with
websocket-client (already in the course environment)."""

import base64
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request

import pytest
from conftest import REPO_ROOT
from PIL import Image, ImageStat

from course_lib.serving import GenerationSettings
from course_lib.serving.gradio_app import DEFAULT_QUESTION, build_demo, gallery_groups, launch
from course_lib.serving.transformers_backend import TransformersEngine

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTEFACTS = REPO_ROOT / "build" / "test-artefacts"
WIDTH, HEIGHT = 1280, 1000
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    f"--window-size={WIDTH},{HEIGHT}",
]

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="no headless browser: apt-get install chromium"),
    pytest.mark.filterwarnings("ignore:'HTTP_422_UNPROCESSABLE_ENTITY' is deprecated"),
]


@pytest.fixture(scope="module")
def url(tiny, tiny_path):
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    engine = TransformersEngine(*tiny, model_path=tiny_path)
    demo = build_demo(engine, engine, settings=GenerationSettings(max_new_tokens=16))
    yield launch(demo)
    demo.close()
    torch.set_num_threads(before)


class Browser:
    """Headless Chromium and one page, driven over the DevTools protocol."""

    def __init__(self, profile):
        self.process = subprocess.Popen(
            [
                CHROMIUM,
                *FLAGS,
                f"--user-data-dir={profile}",
                "--remote-debugging-port=0",
                "--remote-allow-origins=*",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        port_file, deadline = profile / "DevToolsActivePort", time.time() + 30
        while not (port_file.is_file() and port_file.read_text().strip()):
            assert time.time() < deadline and self.process.poll() is None, "Chromium did not start"
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        pages = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10))
        import websocket

        self.socket = websocket.create_connection(
            next(p for p in pages if p["type"] == "page")["webSocketDebuggerUrl"], timeout=60
        )
        self.calls = 0

    def call(self, method, **params):
        self.calls += 1
        self.socket.send(json.dumps({"id": self.calls, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self.calls:
                assert "error" not in message, message
                return message["result"]

    def js(self, expression):
        return self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)[
            "result"
        ].get("value")

    def wait_for(self, expression, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            value = self.js(expression)
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {expression}")

    def close(self):
        self.socket.close()
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=30)


@pytest.mark.timeout(300)
def test_pick_an_example_ask_and_screenshot(url, tmp_path):
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    png = ARTEFACTS / "gradio_demo.png"
    png.unlink(missing_ok=True)
    browser = Browser(tmp_path / "profile")
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
        assert browser.js("document.querySelector('#question textarea').value") == DEFAULT_QUESTION
        browser.js("document.querySelector('#send').click()")
        answer = browser.wait_for("[...document.querySelectorAll('#chat .bot')].map(b => b.innerText).join('')")
        assert answer.strip()
        assert browser.wait_for("document.querySelectorAll('#chat img').length")  # the picture is in the chat
        time.sleep(0.5)  # let the last streamed piece render
        png.write_bytes(base64.b64decode(browser.call("Page.captureScreenshot", format="png")["data"]))
    finally:
        browser.close()
    image = Image.open(png).convert("RGB")
    assert image.size == (WIDTH, HEIGHT)
    assert max(ImageStat.Stat(image).stddev) > 20, "the screenshot is blank"
    assert len(image.getcolors(maxcolors=1 << 20) or []) > 500  # pictures and text, not a flat page
    orange = sum(1 for r, g, b in image.getdata() if r > 230 and 100 < g < 150 and b < 60)
    assert orange > 2000, "the primary (orange) Send button is not visible"


def test_rendered_page_has_the_chat_gallery_settings_and_buttons(url, tmp_path):
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
        "tiny-internvl2",
    ]:
        assert text in dom, f"{text!r} is not on the page"
    for cuisine, items in gallery_groups().items():
        assert f"{cuisine} ({len(items)})" in dom, f"no example tab for {cuisine}"
