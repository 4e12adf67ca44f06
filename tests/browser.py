"""Headless Chromium for the tests that look at a page as a person would (the Gradio demo, JupyterLab), driven over
its DevTools protocol with websocket-client (already in the course environment)."""

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
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
# Characters on the page that the browser draws as the missing-glyph box: each is drawn on a canvas with the
# page's own font and compared with a character no font has (U+10FFFD, a private-use code point).
MISSING_GLYPHS_JS = """
(() => {
  const font = getComputedStyle(document.body).fontFamily;
  const draw = (ch) => {
    const c = document.createElement('canvas'); c.width = c.height = 48;
    const x = c.getContext('2d'); x.font = '32px ' + font; x.textBaseline = 'top'; x.fillText(ch, 4, 4);
    return Array.from(x.getImageData(0, 0, 48, 48).data).join(',');
  };
  const box = draw(String.fromCodePoint(0x10FFFD));
  const placeholders = [...document.querySelectorAll('[placeholder]')].map(e => e.placeholder);
  const text = document.body.innerText + placeholders.join('');
  const chars = [...new Set([...text].filter(ch => ch.codePointAt(0) > 0x2000 && ch.trim()))];
  return chars.filter(ch => !/[\\uFE0F\\u200D]/.test(ch) && draw(ch) === box);
})()
"""


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
        self.events = []

    def call(self, method, **params):
        self.calls += 1
        self.socket.send(json.dumps({"id": self.calls, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self.calls:
                assert "error" not in message, message
                return message["result"]
            if "method" in message:
                self.events.append(message)  # e.g. Network.requestWillBeSent, once Network.enable was called

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
