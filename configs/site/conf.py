# Sphinx configuration of the course's website, for both editions (course_lib/site.py runs it):
#   SITE_LANG=en|zh SITE_SOURCES=build/site-src \
#   sphinx-build -b html -c configs/site build/site-src/<lang> build/site/<lang>
# The pages load nothing from off the machine: MathJax is copied from the django-static-mathjax wheel (MathJax 3.2.2,
# Apache-2.0), the theme's fonts and scripts ship with it, widget scripts are not loaded, search is Sphinx's own.
import importlib.util
import os
import shutil
from pathlib import Path

SITE_LANG = os.environ.get("SITE_LANG", "en")
if SITE_LANG not in ("en", "zh"):
    raise ValueError(f"SITE_LANG must be en or zh, not {SITE_LANG!r}")
SOURCES = Path(os.environ.get("SITE_SOURCES", Path(__file__).resolve().parents[2] / "build" / "site-src"))

project = "Multimodal LLMs, hands on" if SITE_LANG == "en" else "多模态大模型动手实践"
author = "the course kit's authors"
copyright = "2026, " + author
language = "en" if SITE_LANG == "en" else "zh_CN"  # zh_CN: Sphinx segments Chinese for search with jieba

extensions = ["myst_nb"]
root_doc = "index"
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
templates_path = ["_templates"]

# The notebooks were executed before (make notebooks, or the test suite): never again here.
nb_execution_mode = "off"
myst_enable_extensions = ["dollarmath", "amsmath"]
nb_ipywidgets_js = {}  # no widget manager: it loads require.js and the widget scripts from CDNs
# A widget's view has no kernel here: show the next output type instead (course_lib.site puts a note there).
nb_mime_priority_overrides = [("html", "application/vnd.jupyter.widget-view+json", None)]

# MathJax from the site itself.
_mathjax = importlib.util.find_spec("mathjax")
if _mathjax is None or _mathjax.origin is None:
    raise RuntimeError("MathJax is not installed: make site-env installs requirements/site.lock")
MATHJAX = Path(_mathjax.origin).parent / "static" / "mathjax"
MATHJAX_PARTS = ["tex-chtml.js", "output/chtml", "input/tex/extensions", "input/mml.js", "input/mml"]
MATHJAX_PARTS += ["ui", "a11y", "sre"]  # its menu and accessibility, loaded on demand
mathjax_path = "mathjax/tex-chtml.js"


def copy_mathjax(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    target = Path(app.outdir) / "_static" / "mathjax"
    for part in MATHJAX_PARTS:
        source = MATHJAX / "es5" / part
        if source.is_dir():
            shutil.copytree(source, target / part, dirs_exist_ok=True)
        else:
            (target / part).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / part)
    shutil.copy2(MATHJAX / "LICENSE", target / "LICENSE")
    for source_map in Path(app.outdir).rglob("*.map"):  # the theme's source maps: for its developers, 3 MB
        source_map.unlink()


html_theme = "sphinx_book_theme"
html_title = project
html_theme_options = {
    "home_page_in_toc": False,
    "show_navbar_depth": 1,
    "use_download_button": True,
    "use_fullscreen_button": True,
    "use_repository_button": False,
    "launch_buttons": {},  # no Binder, Colab or JupyterHub
    "navigation_with_keys": False,
}
html_sidebars = {"**": ["navbar-logo.html", "lang-switch.html", "sbt-sidebar-nav.html"]}
html_copy_source = True
html_show_sourcelink = False

# The language switch (_templates/lang-switch.html) goes to the same page in the other edition, else to its start.
OTHER = "zh" if SITE_LANG == "en" else "en"
html_context = {
    "other_lang": OTHER,
    "other_lang_label": "中文" if OTHER == "zh" else "English",
    "other_pages": sorted(
        {path.stem for path in (SOURCES / OTHER).glob("*") if path.suffix in (".ipynb", ".md")}
        | {"search", "genindex"}
    ),
}
if SITE_LANG == "zh":  # the glossary's terms as whole words for the search (jieba does not know 多模态 and the like)
    html_search_options = {"dict": str(SOURCES / "zh_search_dict.txt")}


def setup(app):
    app.connect("build-finished", copy_mathjax)
