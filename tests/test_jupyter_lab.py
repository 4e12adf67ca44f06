"""`make course LANG=zh` in a real browser: JupyterLab shows its menus in Chinese, lists the Chinese lessons, and asks
nothing about Jupyter news (a classroom may have no internet). The screenshot is kept in
build/test-artefacts/jupyterlab_zh.png."""

import base64
import os
import signal
import subprocess
import time
import urllib.request

import pytest
from browser import CHROMIUM, HEIGHT, WIDTH, Browser
from conftest import REPO_ROOT

from course_lib.jupyter_lab import lab_command
from course_lib.lessons import edition_dir
from course_lib.serving.server_process import free_port

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no headless browser: apt-get install chromium")


def test_the_lessons_folder_and_settings_follow_the_language():
    zh, en = lab_command("zh"), lab_command("en")
    assert f"--notebook-dir={REPO_ROOT / 'notebooks' / 'zh'}" in zh and edition_dir("en") == REPO_ROOT / "notebooks"
    assert any(arg.endswith("configs/jupyterlab/zh") for arg in zh)
    assert any(arg.endswith("configs/jupyterlab/en") for arg in en)


@pytest.mark.timeout(300)
def test_jupyterlab_opens_in_chinese_on_the_chinese_lessons_without_asking_about_news(tmp_path):
    port = free_port("127.0.0.1")
    token = "course-kit-test-token"
    env = {
        **os.environ,
        "JUPYTER_TOKEN": token,
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),  # nobody's own settings
        "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "user-settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"),
        "COURSE_MODE": "tiny",
    }
    server = subprocess.Popen(
        ["make", "course", "LANG=zh", f"PORT={port}"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    png = REPO_ROOT / "build" / "test-artefacts" / "jupyterlab_zh.png"
    png.parent.mkdir(parents=True, exist_ok=True)
    try:
        url, deadline = f"http://127.0.0.1:{port}/lab?token={token}", time.time() + 300
        while True:
            try:
                urllib.request.urlopen(url, timeout=5)
                break
            except OSError:
                assert server.poll() is None and time.time() < deadline, "JupyterLab did not start"
                time.sleep(0.5)
        browser = Browser(tmp_path / "profile")
        try:
            browser.call(
                "Emulation.setDeviceMetricsOverride", width=WIDTH, height=HEIGHT, deviceScaleFactor=1, mobile=False
            )
            browser.call("Page.navigate", url=url)
            menus = browser.wait_for(
                "[...document.querySelectorAll('.lm-MenuBar-itemLabel')].map(e => e.textContent).join('|')", 120
            )
            listing = browser.wait_for(
                "[...document.querySelectorAll('.jp-DirListing-itemText')].map(e => e.textContent).join('|')", 60
            )
            time.sleep(3)  # the news question, if any, comes a moment after the page
            page = browser.js("document.body.innerText")
            png.write_bytes(base64.b64decode(browser.call("Page.captureScreenshot", format="png")["data"]))
        finally:
            browser.close()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
    assert "文件" in menus and "File" not in menus.split("|"), menus
    assert "01_meet_internvl2.ipynb" in listing and "GLOSSARY.md" in listing, listing
    assert "news" not in page.lower() and "新闻" not in page, page[-500:]
