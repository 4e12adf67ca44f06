#!/usr/bin/env bash
# Wheels for running the device check on a GPU machine that has torch but not the course environment
# (the H200 that the kit's sessions are lent: Python 3.12, torch 2.11, transformers 5.x, no package index).
# They are the course environment's versions of what the check imports beyond torch; 18 MB in all.
#   here:   bash scripts/gpu_check_wheels.sh [FOLDER, default .whl]
#   there:  python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
#           PYTHONPATH=/tmp/site PATH=/tmp/site/bin:$PATH PYTHON=python3 bash scripts/gpu_check.sh --out FILE
set -euo pipefail
folder=${1:-.whl}
platforms=(--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
for wheel in transformers==4.48.0 tokenizers==0.21.4 huggingface_hub==0.36.2 xtuner==0.2.0 mmengine==0.10.6 \
    addict==2.4.0 yapf==0.43.0 platformdirs termcolor==3.3.0 loguru==0.7.3 datasets==5.0.1 dill==0.4.1 \
    multiprocess==0.70.19 fsspec==2026.6.0 peft==0.21.2 openpyxl==3.1.5 et_xmlfile==2.0.0; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        "${platforms[@]}" -d "$folder" "$wheel"
done
ls "$folder"
