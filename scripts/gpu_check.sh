#!/usr/bin/env bash
# The device check (README, "The device check"): the course model on CUDA in bf16 (batch, two turns, stream,
# against the CPU), then the GPU recipe's XTuner LoRA for a few iterations. Offline, under 8 minutes.
#   bash scripts/gpu_check.sh [--out FILE] [--skip-lora]      PYTHON=... to use another interpreter
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
[ -x "$python" ] || python=python3
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
exec timeout 480 "$python" scripts/gpu_check.py "$@"
