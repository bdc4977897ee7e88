#!/usr/bin/env bash
# Run scripts/run_recipes.py jobs on one GPU machine.
#   scripts/gpu_batch.sh MODEL DATA_DIR OUT_DIR LIMIT_S JOBFILE [JOBFILE ...]
# JOBFILE lines: "<output name> <seqlen> <calib samples> <max windows or 0> <label,label,...>";
# one line is one process that runs its labels one after another. Each JOBFILE is one stream
# whose lines run in turn, and the streams run in parallel; with LINE_STREAMS=1 every line of
# every JOBFILE is a stream of its own (keep streams few per GPU: processes time-slice it).
# On a machine with several GPUs set NGPU=n: stream i then runs on GPU i mod n.
# Every stream stops at LIMIT_S seconds of wall time; rows are written as each run finishes.
# Streams that share an output name must not run at once (long JSON lines can interleave):
# give each stream its own name, e.g. lowrank-2048~a, and merge the files afterwards.
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
streams=()
if [ "${LINE_STREAMS:-0}" = 1 ]; then
  split=$(mktemp -d)
  n=0
  for jobs in "$@"; do
    while read -r line; do
      case "$line" in ''|\#*) continue ;; esac
      echo "$line" >"$split/$n"
      streams+=("$split/$n")
      n=$((n + 1))
    done <"$jobs"
  done
else
  streams=("$@")
fi
i=0
for jobs in "${streams[@]}"; do
  pin=()
  [ -n "${NGPU:-}" ] && pin=(env CUDA_VISIBLE_DEVICES=$((i % NGPU)))
  i=$((i + 1))
  # a few CPU threads each: many streams with torch's default (all cores) oversubscribe the host
  "${pin[@]}" env OMP_NUM_THREADS=${THREADS_PER_STREAM:-4} timeout "$limit" bash -c "$(declare -f stream); stream '$model' '$data' '$out' '$jobs'" &
done
wait
