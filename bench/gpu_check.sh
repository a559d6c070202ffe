#!/usr/bin/env bash
# The GPU check in one go on a CUDA machine without internet (bench/gpu_check.py says what it measures).
# The course's sample must be in data/: carry data/course-tokenizer and data/tinystories to the machine.
# Writes bench/results/gpu-DEVICE-DATE.json and its log into $OUT (default: bench/results); the table ends the log.
# 480 s at most (TIMEOUT; the check plans for BUDGET=400 s and skips the runs that would not fit), so a 15-minute GPU
# loan leaves room for the machine's start and a second, shorter try: TIMEOUT=200 BUDGET=150 bash bench/gpu_check.sh --no-compile
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-bench/results}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH="$(pwd)${PYTHONPATH:+:$PYTHONPATH}"
py=$(command -v python3 || command -v python)
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
timeout -k 10 "${TIMEOUT:-480}" "$py" bench/gpu_check.py --budget "${BUDGET:-400}" --out "$out" "$@" 2>&1 | tee "$out/gpu-check.log"
