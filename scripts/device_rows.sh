#!/usr/bin/env bash
# On the device machine (see /work/.library/device): assemble the GGUF from the carried pieces
# (/tmp/part.aa sent by an earlier call, .carry/model/part.ab now), seed $OUT/r with the committed
# rows so finished runs are skipped, then run job streams with scripts/gpu_batch.sh.
#   bash scripts/device_rows.sh LIMIT_S JOBFILE [JOBFILE ...]
set -eu
[ -f /tmp/smol.gguf ] || cat /tmp/part.aa .carry/model/part.ab > /tmp/smol.gguf
python3 -m pip install -q --no-index --no-deps --target /tmp/site .carry/whl/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
mkdir -p "$OUT/r"
cp docs/results/*.jsonl "$OUT/r/"
limit=$1
shift
bash scripts/gpu_batch.sh /tmp/smol.gguf .carry/data "$OUT/r" "$limit" "$@"
