#!/usr/bin/env bash
# Throughput benchmark on a GPU machine (about 2 minutes on one H200): every row of
# `python -m scripts.benchmark all` (env-only, eager vs compiled update, replay sampling at 1M,
# end-to-end fast path for 1, 4, 8, 16 envs, peak memory), written to $OUT/bench_all.json.
#
# On the device machine (Python 3.12 with CUDA torch, numpy, opencv; no gymnasium or ale-py):
#   here, once:  ../shared/tools/gpu-wheels tqdm safetensors
#   device run:  bash scripts/gpu_bench.sh        (carry: [".whl"])
# Locally (CPU, tiny budget, as the tests do):  PY=.venv/bin/python BENCH_STEPS=200 OUT=/tmp/gb \
#   bash scripts/gpu_bench.sh
set -euo pipefail
PY=${PY:-python3}
OUT=${OUT:-runs/gpu}
BENCH_STEPS=${BENCH_STEPS:-8000}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 WANDB_MODE=disabled
if [ -d .whl ] && [ -z "${SKIP_WHEELS:-}" ]; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version \
  --format=csv,noheader | tee "$OUT/gpu.txt" || echo "no GPU: running on CPU" | tee "$OUT/gpu.txt"
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
"$PY" -m scripts.benchmark all --steps "$BENCH_STEPS" --json "$OUT/bench_all.json"
