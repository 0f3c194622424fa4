#!/usr/bin/env bash
# Pong with the `fast` preset on a GPU machine within a wall-clock budget (default 450 s of
# training, about 9 minutes in all): prints the evaluation returns against wall-clock seconds,
# then exports the final agent (half-precision weights, a few MB) with its measured score to
# $OUT/pong.safetensors + $OUT/pong.json, and copies metrics.csv and summary.json to $OUT.
# At the budget the run gets SIGINT: it checkpoints and exits 130 (see scripts/train.py).
# PONG_STEPS sets a budget in agent steps instead (--total-steps; the run then exits 0), which
# does not depend on the machine's speed; PONG_SECONDS=0 turns the wall-clock budget off.
# A checkpoint every 250k agent steps (with each evaluation): the export still has the newest of
# them if the stop's own checkpoint is missing (seen once on an H200: exit 130, no stop line;
# likely `timeout` delivering its SIGINT twice, to the command and to its process group, the
# repeat then taken as a second stop; a repeat within 1 s is now the same stop).
#
#   here, once:  ../shared/tools/gpu-wheels tqdm safetensors
#   device run:  bash scripts/gpu_pong.sh        (carry: [".whl"])
# Locally (CPU, tiny budget, as the tests do):  PY=.venv/bin/python PONG_STEPS=400 \
#   PONG_SECONDS=0 PONG_FLAGS="--num-envs 2 --learning-starts 200 --buffer-size 5000 \
#   --eval-every-steps 400 --eval-episodes 1 --final-eval-episodes 1 --compile off" \
#   EXPORT_EPISODES=1 OUT=/tmp/gp bash scripts/gpu_pong.sh
set -uo pipefail
PY=${PY:-python3}
OUT=${OUT:-runs/gpu}
PONG_SECONDS=${PONG_SECONDS:-450}  # wall-clock budget of the training, 0: none
PONG_STEPS=${PONG_STEPS:-}  # budget in agent steps, empty: the preset's 3M
RUN=${RUN:-/tmp/pong-fast}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 WANDB_MODE=disabled
if [ -d .whl ] && [ -z "${SKIP_WHEELS:-}" ]; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
rm -rf "$RUN"
# shellcheck disable=SC2086  # PONG_FLAGS is a list of flags
timeout --preserve-status -s INT "$PONG_SECONDS" "$PY" -m scripts.train --env Pong --preset fast \
  --output-dir "$RUN" --no-progress --no-record-video --keep-checkpoints 1 \
  --checkpoint-every-steps 250000 --stop-at-return 19 ${PONG_STEPS:+--total-steps "$PONG_STEPS"} ${PONG_FLAGS:-}
code=$?
wall="${PONG_SECONDS} s"
[ "$PONG_SECONDS" = 0 ] && wall="none"
echo "train exit code $code (0: step budget ${PONG_STEPS:-of the preset} or return 19 reached;" \
  "130: stopped at the wall-clock budget, $wall)"
if [ "$code" -ne 0 ] && [ "$code" -ne 130 ]; then exit "$code"; fi
[ -f "$RUN/summary.json" ] || echo "no summary.json in $RUN: the run did not finish its stop;" \
  "exporting its newest periodic checkpoint"
"$PY" - "$RUN/metrics.csv" <<'PYEOF'
import csv, sys
rows = [r for r in csv.DictReader(open(sys.argv[1])) if r["metric"] == "eval/mean_return"]
print("evaluation returns (agent steps, wall-clock seconds, mean return):")
for r in rows:
    print(f"  {int(r['global_step']):>9}  {float(r['wall_seconds']):7.1f} s  {float(r['value']):+.2f}")
PYEOF
cp "$RUN/metrics.csv" "$RUN/summary.json" "$OUT/" 2>/dev/null
"$PY" -m scripts.export_pretrained "$RUN" --name pong --output-dir "$OUT" \
  --episodes "${EXPORT_EPISODES:-10}"
