#!/usr/bin/env bash
# Run scripts/run_recipes.py jobs on one GPU machine: each JOBFILE is one stream whose lines run
# one after another; the streams run in parallel (keep them few: processes time-slice the GPU).
#   scripts/gpu_batch.sh MODEL DATA_DIR OUT_DIR LIMIT_S JOBFILE [JOBFILE ...]
# JOBFILE lines: "<output name> <seqlen> <calib samples> <max windows or 0> <label,label,...>".
# Every stream stops at LIMIT_S seconds of wall time; rows are written as each run finishes.
set -u
model=$1 data=$2 out=$3 limit=$4
shift 4
mkdir -p "$out"
stream() {
  local model=$1 data=$2 out=$3 jobs=$4
  while read -r name seqlen samples windows labels; do
    [ -z "$name" ] && continue
    case "$name" in \#*) continue ;; esac
    extra=()
    [ "$windows" != "0" ] && extra=(--max-windows "$windows")
    python scripts/run_recipes.py --model "$model" --data-dir "$data" --device cuda \
      --recipes "$labels" --seqlen "$seqlen" --calib-samples "$samples" "${extra[@]}" --quiet \
      --out "$out/$name.jsonl" >>"$out/$name.log" 2>&1
  done <"$jobs"
}
for jobs in "$@"; do
  timeout "$limit" bash -c "$(declare -f stream); stream '$model' '$data' '$out' '$jobs'" &
done
wait
