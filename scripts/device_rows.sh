#!/usr/bin/env bash
# On the device machine (see /work/.library/device): assemble the GGUF from the carried pieces
# (/tmp/part.aa sent by an earlier call, .carry/model/part.ab now), seed the rows folder with the
# committed rows so finished runs are skipped, then run job streams with scripts/gpu_batch.sh.
#   bash scripts/device_rows.sh LIMIT_S JOBFILE [JOBFILE ...]
# The rows folder is /tmp/r, kept between calls on a warm machine (a second call resumes where
# the first stopped); it comes back as $OUT/rows.tgz. NGPU and LINE_STREAMS pass through.
set -eu
[ -f /tmp/smol.gguf ] || cat /tmp/part.aa .carry/model/part.ab > /tmp/smol.gguf
[ -d /tmp/site/gguf ] || python3 -m pip install -q --no-index --no-deps --target /tmp/site .carry/whl/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
rows=/tmp/r
mkdir -p "$rows"
for f in docs/results/*.jsonl; do [ -f "$rows/$(basename "$f")" ] || cp "$f" "$rows/"; done
limit=$1
shift
bash scripts/gpu_batch.sh /tmp/smol.gguf .carry/data "$rows" "$limit" "$@" || true
tar czf "$OUT/rows.tgz" -C "$rows" .  # one file back: the device returns at most 8
