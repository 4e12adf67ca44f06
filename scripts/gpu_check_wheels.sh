#!/usr/bin/env bash
# Wheels for running the device check on a GPU machine that has torch but not the course environment
# (the H200 that the kit's sessions are lent: Python 3.12, torch 2.11, transformers 5.x, no package index).
# They are what the check imports beyond torch, at the versions of requirements/course.lock; 18 MB in all.
#   here:   bash scripts/gpu_check_wheels.sh [FOLDER, default .whl]
#   there:  python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
#           PYTHONPATH=/tmp/site PATH=/tmp/site/bin:$PATH PYTHON=python3 bash scripts/gpu_check.sh --out FILE
set -euo pipefail
cd "$(dirname "$0")/.."
folder=${1:-.whl}
names="transformers tokenizers huggingface_hub mmengine addict yapf platformdirs termcolor loguru datasets dill
       multiprocess fsspec peft openpyxl et_xmlfile"
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
ls "$folder"
