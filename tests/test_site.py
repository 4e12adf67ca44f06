"""The course's website (make site, course_lib/site.py), built from the lessons the suite executed (build/notebooks,
build/notebooks/zh: tests/test_notebooks.py writes them, so nothing is executed twice) and checked in headless
Chromium: every lesson page loads with its plots, searching 像素 or "pixel shuffle" finds lesson 04, the language
switch lands on the same lesson, and no request leaves the machine. Screenshots: build/test-artefacts/site_*.png."""

import base64
import functools
import os
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote

import nbformat
import pytest
from browser import CHROMIUM, HEIGHT, WIDTH, Browser
from conftest import REPO_ROOT, require_environment

from course_lib import site
from course_lib.lessons import LESSONS

ARTEFACTS = REPO_ROOT / "build" / "test-artefacts"


def test_a_widget_or_an_app_becomes_a_note_and_the_glossary_gives_the_search_its_words(tmp_path):
    from nbformat.v4 import new_code_cell, new_notebook, new_output

    cell = new_code_cell("widgets.interactive(draw)")
    cell.outputs = [
        new_output("display_data", data={"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"}),
        new_output("execute_result", data={site.WIDGET_VIEW: {"model_id": "x"}, "text/plain": "interactive(...)"}),
        new_output("display_data", data={"text/html": '<div><iframe src="http://127.0.0.1:45097/"></iframe></div>'}),
        new_output("display_data", data={site.WIDGET_VIEW: {"model_id": "y"}, "text/plain": "answering: 100% 3/3"}),
    ]
    path = tmp_path / "03_x.ipynb"
    nbformat.write(new_notebook(cells=[cell], metadata={"widgets": {"state": {}}}), path)
    shown = site.static_notebook(path, "zh")
    assert shown.cells[0].outputs[0].data["image/png"] == "iVBORw0KGgo="  # the figure stays
    assert shown.cells[0].outputs[1].data == {"text/markdown": site.WIDGET_NOTE["zh"]}
    assert shown.cells[0].outputs[2].data == {"text/markdown": site.APP_NOTE["zh"]}  # its server is gone
    assert shown.cells[0].outputs[3].data == {"text/plain": "answering: 100% 3/3"}  # a progress bar: its last state
    assert "widgets" not in shown.metadata
    words = site.search_words()
    assert {"多模态大语言模型", "像素重排", "视觉编码器", "缩略图"} <= set(words)


@pytest.fixture(scope="module")
def built():
    require_environment("site", site.SITE_PYTHON)
    try:  # the suite's executed lessons; a developer running this file alone gets told how to make them
        report = site.build_site()
    except site.SiteError as error:
        if "make notebooks" in str(error) and not os.environ.get("CI"):  # CI runs the whole suite: there it fails
            pytest.skip(f"{error} (the whole suite writes them first)")
        raise
    return report


@pytest.fixture(scope="module")
def served(built):
    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(site.SITE_DIR))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def browser(served, tmp_path_factory):
    if CHROMIUM is None:
        pytest.skip("no headless browser: apt-get install chromium")
    browser = Browser(tmp_path_factory.mktemp("profile"))
    browser.call("Emulation.setDeviceMetricsOverride", width=WIDTH, height=HEIGHT, deviceScaleFactor=1, mobile=False)
    browser.call("Network.enable")
    yield browser
    browser.close()


def open_page(browser, url):
    browser.call("Page.navigate", url=url)
    browser.wait_for(f"location.href === {url!r} && document.readyState === 'complete'")
    time.sleep(0.3)


def test_both_editions_build_with_every_lesson(built):
    assert built["en"]["lessons"] == built["zh"]["lessons"] == len(LESSONS)
    for lang in ("en", "zh"):
        assert not built[lang]["warnings"], built[lang]["warnings"]
    assert (site.SITE_DIR / "en" / "_static" / "mathjax" / "tex-chtml.js").is_file()


@pytest.mark.timeout(600)
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_lesson_page_loads_with_its_plots_goals_and_recap(browser, served, lang):
    words = {"en": ("Goals", "Recap"), "zh": ("目标", "小结")}[lang]
    drawn = 0
    for lesson in LESSONS:
        executed = nbformat.read(site.executed_folder(lang) / lesson.notebook, as_version=4)
        pictures = sum("image/png" in out.get("data", {}) for cell in executed.cells for out in cell.get("outputs", []))
        open_page(browser, f"{served}/{lang}/{lesson.notebook.replace('.ipynb', '.html')}")
        text = browser.js("document.querySelector('main').innerText")
        assert all(word in text for word in words), f"{lang}/{lesson.notebook}: no {words}"
        loaded = "[...document.querySelectorAll('main img')].filter(i => i.complete && i.naturalWidth > 0).length"
        shown = browser.wait_for(f"({loaded} >= {pictures}) && ({loaded} + 1)", 30) - 1  # the plots, drawn
        assert shown >= pictures, f"{lang}/{lesson.notebook}: {shown} of {pictures} plots shown"
        drawn += pictures
        if "$" in "".join(c.source for c in executed.cells if c.cell_type == "markdown"):
            assert browser.wait_for("document.querySelectorAll('mjx-container').length", 30), "no math rendered"
    assert drawn > 30, f"the executed lessons hold only {drawn} plots: were they run with MPLBACKEND=Agg?"
    if lang == "en":
        open_page(browser, f"{served}/en/04_pixel_shuffle.html")
        ARTEFACTS.mkdir(parents=True, exist_ok=True)
        first = "document.querySelector('main img')"
        top = (
            browser.wait_for(f"{first} && {first}.complete && ({first}.getBoundingClientRect().top + scrollY + 1)")
            - 300
        )
        clip = {"x": 0, "y": max(0, top), "width": WIDTH, "height": HEIGHT, "scale": 1}  # the first plot, in view
        shot = browser.call("Page.captureScreenshot", format="png", captureBeyondViewport=True, clip=clip)["data"]
        (ARTEFACTS / "site_en_04.png").write_bytes(base64.b64decode(shot))


@pytest.mark.parametrize("lang, query", [("zh", "像素"), ("en", "pixel shuffle")])
def test_search_finds_lesson_04(browser, served, lang, query):
    open_page(browser, f"{served}/{lang}/search.html?q={quote(query)}")
    found = browser.wait_for(
        "[...document.querySelectorAll('#search-results li a')].map(a => a.getAttribute('href')).join(' ')", 30
    )
    assert "04_pixel_shuffle.html" in found, found
    if lang == "zh":
        ARTEFACTS.mkdir(parents=True, exist_ok=True)
        shot = browser.call("Page.captureScreenshot", format="png")["data"]
        (ARTEFACTS / "site_zh_search.png").write_bytes(base64.b64decode(shot))


@pytest.mark.parametrize("start, target", [("en", "zh"), ("zh", "en")])
def test_the_language_switch_lands_on_the_same_lesson(browser, served, start, target):
    open_page(browser, f"{served}/{start}/04_pixel_shuffle.html")
    browser.js("document.querySelector('.lang-switch a').click()")
    landed = browser.wait_for(f"location.pathname.endsWith('/{target}/04_pixel_shuffle.html') && location.pathname")
    assert landed.endswith(f"/{target}/04_pixel_shuffle.html")


def test_no_request_leaves_the_machine(browser, served):
    """Every request the pages made (scripts, styles, fonts, MathJax, images, the search index) went to the site."""
    for page in ("en/index.html", "en/04_pixel_shuffle.html", "zh/11_before_after_evaluation.html"):
        open_page(browser, f"{served}/{page}")
    open_page(browser, f"{served}/zh/search.html?q={quote('像素')}")
    browser.wait_for("document.querySelectorAll('#search-results li').length", 30)
    urls = {e["params"]["request"]["url"] for e in browser.events if e["method"] == "Network.requestWillBeSent"}
    assert len(urls) > 20 and any("mathjax" in url for url in urls), sorted(urls)[:20]
    elsewhere = sorted(url for url in urls if not url.startswith((served, "data:", "blob:", "about:")))
    assert not elsewhere, elsewhere
