"""Does QuaRot's rotation help or hurt weight quantization on this model? W4A16 / W8A16 RTN with
and without the ``rotate`` transform: perplexity and the mean held-out output SNR per layer kind.

    python scripts/quarot_diagnosis.py --seqlen 256 --calib-samples 4 --max-windows 6 \
        --out docs/results/quarot-diagnosis.json

The rotated float model equals the original to float round-off (tests/transforms/test_rotate.py),
so any gap here is the quantizer meeting rotated weights, not a wrong rotation.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import datetime
import json
import statistics
from pathlib import Path

from residq.formats.spec import FormatSpec
from residq.pipeline import evaluate_model, load_any_model, quantize_with_calibration
from residq.recipe import load_recipe

WEIGHTS = {
    "int8-channel": FormatSpec(kind="int", bits=8, granularity="channel"),
    "int4-channel": FormatSpec(kind="int", bits=4, granularity="channel"),
    "nvfp4": FormatSpec(kind="nvfp4"),
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--seqlen", type=int, default=256)
    parser.add_argument("--calib-samples", type=int, default=4)
    parser.add_argument("--max-windows", type=int, default=6)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    model, tokenizer, _ = load_any_model(args.model)

    def perplexity(m) -> float:
        scores = evaluate_model(m, tokenizer, ["wikitext2"], seqlen=args.seqlen, max_windows=args.max_windows,
                                device=args.device, data_dir=args.data_dir, progress=False)
        return scores["ppl"]["wikitext2"]

    rows = [{"weight": "fp", "rotate": False, "ppl": perplexity(copy.deepcopy(model))}]
    base = load_recipe("w4a16-nvfp4-rtn")
    for label, spec in WEIGHTS.items():
        for transforms in ((), ("rotate",)):
            quantized = copy.deepcopy(model)
            recipe = dataclasses.replace(base, name=label, weight=spec, transforms=transforms)
            result = quantize_with_calibration(quantized, tokenizer, recipe, n_samples=args.calib_samples,
                                               seqlen=args.seqlen, device=args.device, data_dir=args.data_dir,
                                               progress=False)
            by_kind: dict[str, list[float]] = {}
            for record in result.layers:
                by_kind.setdefault(record.name.rsplit(".", 1)[-1], []).append(record.info["snr_db"])
            row = {"weight": label, "rotate": bool(transforms), "ppl": perplexity(quantized),
                   "snr_db": {kind: statistics.mean(v) for kind, v in by_kind.items()}}
            rows.append(row)
            print(json.dumps(row), flush=True)
    out = {"model": args.model, "seqlen": args.seqlen, "calib_samples": args.calib_samples,
           "max_windows": args.max_windows, "date": datetime.date.today().isoformat(), "rows": rows}
    path = Path(args.out)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(out, indent=1))
    tmp.replace(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
