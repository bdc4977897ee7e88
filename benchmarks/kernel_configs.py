"""Configurations ``benchmarks/kernels.py`` tries per kernel family: the default first, and with
``--sweep`` the alternatives (the fastest is kept; every one is recorded under ``sweeps``)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from residq.kernels import act_quant, w4a4_skinny, w4a16


def w4a16_configs(m: int, fmt: str, n: int, k: int, sweep: bool) -> list[dict | None]:
    """W4A16: up to 16 tokens the default choice (None), then the skinny kernel's work splits
    and the tiled kernel; above, tiled-kernel tiles."""
    if m <= 16:
        cfgs = [None]
        if sweep:
            auto = w4a16.skinny_config(m, n, k, fmt)["CH"]
            variants = dict.fromkeys(((4, auto, 1, None), (4, auto, 2, 128), (4, auto, 1, 128),
                                      (4, 2, 2, None), (4, 2, 2, 128), (4, 8, 2, 128), (8, auto, 2, 128)))
            cfgs += [{"kernel": "skinny", "num_warps": w, "R": 1, "CH": ch, "PREFETCH": pf, "maxnreg": reg}
                     for w, ch, pf, reg in variants]
            cfgs.append({"kernel": "tiled"})
        return cfgs
    if m <= 128:
        tiles = [(64, 128, 128, 4, 3), (128, 128, 128, 8, 3)]
    else:
        tiles = [(128, 128, 128, 8, 3), (128, 128, 128 if fmt == "int4" else 64, 8, 4)]
    keys = ("BLOCK_N", "BLOCK_M", "BLOCK_K", "num_warps", "num_stages")
    cfgs = [dict(zip(keys, t)) for t in dict.fromkeys(tiles)]
    return cfgs if sweep else cfgs[:1]


def w4a4_configs(m: int, sweep: bool) -> list[dict]:
    """W4A4: the skinny path (decode), the fused kernel, the decoded path's GEMM tiles and the
    weight decoded inside the GEMM (``w4a4_wdec.py``; "wdec8": 8 producer warps for one
    consumer warpgroup)."""
    if m <= w4a4_skinny.SKINNY_MAX_M:
        cfgs = [{"path": "skinny"}, {"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_K": 128, "num_warps": 4,
                                     "num_stages": 4, "GROUP_M": 8, "path": "fused"}]
        return cfgs if sweep else cfgs[:1]
    if m <= 128:
        tiles = [(64, 64, 128, 4, 4, None, "fused"), (64, 128, 128, 4, 3, None, "fused")]
    else:  # decoded: bf16 GEMM tiles; fused: 128 registers, two 8-warp programs per SM
        tiles = [(128, 256, 64, 8, 3, None, "decoded"), (128, 256, 64, 8, 4, None, "decoded"),
                 (256, 128, 64, 8, 3, None, "decoded"), (128, 128, 64, 4, 4, None, "decoded"),
                 (128, 128, 64, 8, 4, 128, "fused"),
                 (256, 128, 64, 8, 4, None, "wdec"), (128, 256, 64, 8, 4, None, "wdec"),
                 (128, 128, 64, 4, 4, None, "wdec8"), (128, 128, 64, 4, 6, None, "wdec8")]
    keys = ("BLOCK_M", "BLOCK_N", "BLOCK_K", "num_warps", "num_stages", "maxnreg", "path")
    cfgs = [dict(zip(keys, t), GROUP_M=8) for t in tiles]
    for cfg in cfgs:
        if cfg["path"].startswith("wdec"):
            producers = {"decoder_warps": 8, "decoder_regs": 160} if cfg["path"] == "wdec8" else {}
            cfg.update(path="decoded", weight_in_gemm=True, **producers)
    return cfgs if sweep else cfgs[:1]


def act_quant_tiles(fmt: str, sweep: bool, s: int = 0, lowrank: bool = False) -> list[dict]:
    """Activation quantizer tiles: the default for the format and variant (ARCQuant s, fused X A),
    and with ``sweep`` the alternatives
    (duplicates of the default dropped)."""
    tiles = [act_quant.default_tile(fmt, s, lowrank)]
    if sweep:
        tiles += [{"block_rows": 16, "chunk_cols": 256, "num_warps": 4},
                  {"block_rows": 32, "chunk_cols": 256, "num_warps": 4},
                  {"block_rows": 16, "chunk_cols": 512, "num_warps": 4},
                  {"block_rows": 16, "chunk_cols": 256, "num_warps": 2},
                  {"block_rows": 8, "chunk_cols": 512, "num_warps": 4},
                  {"block_rows": 16, "chunk_cols": 256, "num_warps": 4, "chunks_per_program": 2},
                  {"block_rows": 16, "chunk_cols": 256, "num_warps": 4, "chunks_per_program": 4},
                  {"block_rows": 8, "chunk_cols": 512, "num_warps": 4, "chunks_per_program": 2},
                  {"block_rows": 16, "chunk_cols": 128, "num_warps": 4, "chunks_per_program": 4},
                  {"block_rows": 8, "chunk_cols": 512, "num_warps": 4, "chunks_per_program": 4},
                  {"block_rows": 8, "chunk_cols": 256, "num_warps": 2, "chunks_per_program": 4},
                  {"block_rows": 4, "chunk_cols": 512, "num_warps": 2, "chunks_per_program": 2},
                  {"block_rows": 8, "chunk_cols": 512, "num_warps": 8, "chunks_per_program": 2}]
        tiles = [dict(t) for t in dict.fromkeys(tuple(sorted({"chunks_per_program": 1, **t}.items()))
                                                for t in tiles)]
    return tiles
