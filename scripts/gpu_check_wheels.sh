#!/usr/bin/env bash
# Wheels for running the device check on a GPU machine that has torch but not the course environment
# (the H200 that the kit's sessions are lent: Python 3.12, torch 2.11, transformers 5.x, no package index).
# They are what the check imports beyond torch, at the versions of requirements/course.lock, DeepSpeed included
# (built here into a wheel); about 24 MB in all.
#   here:   bash scripts/gpu_check_wheels.sh [FOLDER, default .whl]
#   there:  python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
#           PYTHONPATH=/tmp/site PATH=/tmp/site/bin:$PATH PYTHON=python3 bash scripts/gpu_check.sh --out FILE
set -euo pipefail
cd "$(dirname "$0")/.."
folder=${1:-.whl}
names="transformers tokenizers huggingface_hub mmengine addict yapf platformdirs termcolor loguru datasets dill
       multiprocess fsspec peft openpyxl et_xmlfile hjson msgpack ninja py-cpuinfo pydantic pydantic_core
       annotated-types typing-inspection"
pins=$(cat requirements/xtuner.txt)
for name in $names; do
    pin=$(grep -i "^$name==" requirements/course.lock) || { echo "$name is not pinned in requirements/course.lock" >&2; exit 1; }
    pins="$pins $pin"
done
platforms=(--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
for pin in $pins; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        "${platforms[@]}" -d "$folder" "$pin"
done
# DeepSpeed (the ZeRO-2 half of the check) is published as a source archive only: build its pure-Python wheel
# here, with the course environment's torch (its setup imports torch; DS_BUILD_OPS=0 compiles no ops) and the
# build tools in a folder of their own, so the course environment is not changed.
deepspeed=$(grep -i "^deepspeed==" requirements/course.lock)
tools=$(mktemp -d)
.venv/bin/python -m pip install -q --no-deps --target "$tools" wheel "setuptools>=70,<82"
PYTHONPATH=$tools DS_BUILD_OPS=0 .venv/bin/python -m pip wheel -q --no-deps --no-build-isolation -w "$folder" "$deepspeed"
rm -rf "$tools"
ls "$folder"
