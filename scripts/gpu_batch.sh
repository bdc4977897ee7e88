#!/usr/bin/env bash
# Run many scripts/run_recipes.py jobs in parallel on one GPU machine (the model is small, so
# several processes share the card). Usage:
#   scripts/gpu_batch.sh MODEL DATA_DIR OUT_DIR LIMIT_S JOBFILE
# JOBFILE lines: "<output name> <seqlen> <calib samples> <max windows or 0> <label,label,...>".
# Each line runs as its own process (wall-clock limit LIMIT_S, rows written as they finish),
# logs to OUT_DIR/<output name>.log.
set -u
model=$1 data=$2 out=$3 limit=$4 jobs=$5
mkdir -p "$out"
while read -r name seqlen samples windows labels; do
  [ -z "$name" ] && continue
  case "$name" in \#*) continue ;; esac
  extra=()
  [ "$windows" != "0" ] && extra=(--max-windows "$windows")
  timeout "$limit" python scripts/run_recipes.py --model "$model" --data-dir "$data" --device cuda \
    --recipes "$labels" --seqlen "$seqlen" --calib-samples "$samples" "${extra[@]}" --quiet \
    --out "$out/$name.jsonl" >"$out/$name.$RANDOM.log" 2>&1 &
done <"$jobs"
wait
