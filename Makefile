# The course kit's commands. The two that matter:
#   make course   set up (first time only), build tiny mode, start JupyterLab on 127.0.0.1
#   make test     set up (first time only), then run the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed
SERVING := .venv-serving
SERVING_STAMP := $(SERVING)/.installed
NEWEST := .venv-newest
NEWEST_STAMP := $(NEWEST)/.installed
SITE_ENV := .venv-site
SITE_STAMP := $(SITE_ENV)/.installed
# Both environments are installed by uv (kept inside .venv) from one package cache on the same disk, so the
# serving environment hard-links torch and everything else the two share instead of a second copy.
UV_VERSION := 0.13.9
UV := $(BIN)/uv
UV_PIP := $(UV) pip install --quiet
export UV_CACHE_DIR ?= $(abspath .cache/uv)
export UV_LINK_MODE ?= hardlink
HOST ?= 127.0.0.1
PORT ?= 8888
PYTEST_ARGS ?=
# The course's language: make course LANG=zh (or a Chinese locale in LANG, e.g. zh_CN.UTF-8) opens the Chinese edition
# (notebooks/zh) in a Chinese JupyterLab; make demo LANG=zh runs the demo in Chinese. LANG=zh or LANG=en alone is not
# a locale, so the commands then run with C.UTF-8.
# COURSE_LANG set in the environment is kept unless LANG is given on the command line.
ifeq ($(origin LANG),command line)
COURSE_LANG := $(LANG)
endif
COURSE_LANG := $(if $(filter zh zh_% zh-% zh.%,$(or $(COURSE_LANG),$(LANG))),zh,en)
ifneq ($(filter zh en,$(LANG)),)
override LANG := C.UTF-8
endif
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export PATH := $(BIN):$(PATH)

.PHONY: course test lint format env system-deps tiny course-model sweep check notebooks translations site site-env configs demo serving-env newest-env lock clean gpu-check

# JupyterLab on the lessons of the language, with its settings (course_lib/jupyter_lab.py): the interface language,
# and no "official Jupyter news" question or update check, which need the internet a classroom may not have.
course: env tiny
	COURSE_LANG=$(COURSE_LANG) $(BIN)/python -m course_lib check --short
	COURSE_LANG=$(COURSE_LANG) $(BIN)/python -m course_lib lab --host $(HOST) --port $(PORT)

test: env system-deps lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# ruff, configured in pyproject.toml: the lint rules and the formatting every commit keeps (make format applies it).
lint: env
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: env
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

env: $(STAMP)

# The venv with uv in it (also for a .venv made before the kit used uv).
$(UV):
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv==$(UV_VERSION)

$(STAMP): requirements/course.in requirements/course.lock requirements/xtuner.txt pyproject.toml | $(UV)
	@echo "== Creating the course environment in $(VENV) (first time: under a minute with a fast network, about 6 GB) =="
	$(UV_PIP) --python $(BIN)/python -r requirements/course.in -c requirements/course.lock
	$(UV_PIP) --python $(BIN)/python --no-deps -r requirements/xtuner.txt
	$(UV_PIP) --python $(BIN)/python --no-deps -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name course-kit --display-name "Course kit (course env)"
	touch $(STAMP)

system-deps:
	@bash scripts/system-deps.sh

tiny: env
	$(BIN)/python -m course_lib build-tiny

# The course model (assets/course-model): run its recipe (about 12 CPU minutes, or reuse a build in the cache),
# compare with the shipped weights; PUBLISH=1 replaces them, FRESH=1 rebuilds everything in a new cache folder.
course-model: env
	$(BIN)/python -m course_lib course-model $(if $(PUBLISH),--publish) $(if $(FRESH),--fresh)

# Lesson 11's sweep of the tiny fine-tune (replay, general replay, epochs, LoRA rank): about 35 CPU minutes; writes
# assets/finetune_sweep.json, the table the kit ships (a test checks it is today's). Stopped, it resumes.
sweep: env tiny
	COURSE_MODE=tiny $(BIN)/python benchmarks/finetune_sweep.py

# Re-render configs/*.py from course_lib/finetune/xtuner_config.py (a test keeps them in step).
configs: env
	$(BIN)/python -c "from course_lib.finetune.xtuner_config import write_configs; write_configs()"

check: env
	$(BIN)/python -m course_lib check

# The course as a website in build/site (course_lib/site.py): the executed lessons of both editions (build/notebooks,
# build/notebooks/zh; a lesson without an executed copy is executed first), built offline by Sphinx in .venv-site.
# Serve it to a classroom: python3 -m http.server -d build/site
site: env tiny site-env
	$(BIN)/python -m course_lib site

# The site's own environment (Sphinx 8.2.3, myst-nb, sphinx-book-theme, jieba, MathJax), from requirements/site.lock.
site-env: $(SITE_STAMP)

$(SITE_STAMP): requirements/site.lock | $(UV)
	test -x $(SITE_ENV)/bin/python || $(PYTHON) -m venv $(SITE_ENV)
	$(UV_PIP) --python $(SITE_ENV)/bin/python -r requirements/site.lock
	touch $(SITE_STAMP)

# The Chinese edition: update translations/zh_CN/*.po from the English lessons and write notebooks/zh (generated: edit
# the English notebooks and the catalogues, never notebooks/zh). It lists what is left to translate.
translations: env
	$(BIN)/python -m course_lib translations --check

# Execute every notebook headlessly (a teacher's dry run before class): executed copies and HTML in build/notebooks
# (LANG=zh: the Chinese edition, into build/notebooks/zh). SITE=1: then the website from them (make site).
notebooks: env tiny
	$(BIN)/python -m course_lib notebooks --lang $(COURSE_LANG)
	$(if $(SITE),$(MAKE) site)

# The Gradio food demo as an app (127.0.0.1, no share link): make demo [DEMO_PORT=7860]
demo: env tiny
	COURSE_LANG=$(COURSE_LANG) $(BIN)/python -m course_lib.serving.gradio_app --host $(HOST) --port $(or $(DEMO_PORT),7860)

# LMDeploy in its own environment (it cannot share one with XTuner), registered as the kernel "course-kit-serving".
# Its engines need a GPU; its chat template, image preprocessing and CLI run anywhere (the tests use them).
# The device check (GPU machines only; README "The device check"): the course model on CUDA, the GPU recipe's LoRA.
gpu-check: env
	bash scripts/gpu_check.sh --out gpu_check.json

serving-env: $(SERVING_STAMP)

$(SERVING_STAMP): requirements/serving.lock pyproject.toml | $(STAMP) $(UV)
	@echo "== Creating the serving environment in $(SERVING) (torch and the rest shared with $(VENV) by hard links) =="
	test -x $(SERVING)/bin/python || $(PYTHON) -m venv $(SERVING)
	$(UV_PIP) --python $(SERVING)/bin/python -r requirements/serving.lock
	$(UV_PIP) --python $(SERVING)/bin/python --no-deps -e .
	$(SERVING)/bin/python -m ipykernel install --prefix $(abspath $(VENV)) --name course-kit-serving \
		--display-name "Course kit (serving env, LMDeploy)"
	touch $(SERVING_STAMP)

# The newest transformers on the package index (requirements/newest.in), for one test: the kit's checkpoints load
# with the same weights and answer the same there (tests/test_loading_rule.py). Seconds: uv hard-links the rest.
newest-env: $(NEWEST_STAMP)

$(NEWEST_STAMP): requirements/newest.lock pyproject.toml | $(STAMP) $(UV)
	test -x $(NEWEST)/bin/python || $(PYTHON) -m venv $(NEWEST)
	$(UV_PIP) --python $(NEWEST)/bin/python -r requirements/newest.lock
	$(UV_PIP) --python $(NEWEST)/bin/python --no-deps -e .
	touch $(NEWEST_STAMP)

# Re-pin the environments after changing requirements/course.in or requirements/serving.in. The serving lock
# keeps the course environment's version of every package the two share (same Pillow: same pixels; same wheels:
# hard links), except the ones LMDeploy needs at other versions (transformers, tokenizers, huggingface-hub, peft).
lock: env
	{ sed -n '1,2p' requirements/course.lock; $(BIN)/python -m pip freeze --exclude-editable | grep -v -e '^xtuner=='; } > requirements/course.lock.new
	mv requirements/course.lock.new requirements/course.lock
	grep -v -i -E '^(transformers|tokenizers|huggingface[-_]hub|peft)==' requirements/course.lock > requirements/shared.txt
	$(UV) pip compile --quiet --python $(BIN)/python --python-platform x86_64-manylinux_2_28 \
		--custom-compile-command "make lock" -c requirements/shared.txt requirements/serving.in -o requirements/serving.lock
	$(UV) pip compile --quiet --python $(BIN)/python --python-platform x86_64-manylinux_2_28 \
		--custom-compile-command "make lock" -c requirements/shared.txt requirements/newest.in -o requirements/newest.lock
	rm requirements/shared.txt
	$(UV) pip compile --quiet --python $(BIN)/python --python-platform x86_64-manylinux_2_28 \
		--custom-compile-command "make lock" requirements/site.in -o requirements/site.lock

clean:
	rm -rf build .pytest_cache
