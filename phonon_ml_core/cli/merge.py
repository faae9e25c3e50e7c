"""``phonon-ml merge``: the shard files of one data set (``simulate --count N --shard i/n``) into one file.

A thin front end of :func:`phonon_ml_core.simulator.dataset.merge_shards`, which refuses shards of different
seeds, materials, experiments, sampling or simulator settings, and index gaps or overlaps. The output is written
atomically: a refused or interrupted merge leaves nothing behind.
"""
from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("merge", help="merge the shards of a simulated data set into one file",
                       description="Merge the shard files written by `phonon-ml simulate --count N --seed S "
                                   "--shard i/n` (all n of them, any order) into one data set, identical in content "
                                   "to an unsharded run. Shards of different seeds, materials, experiments or "
                                   "sampling, and missing or repeated shards, are refused. See docs/scaling.md.")
    p.add_argument("--input", "-i", nargs="+", required=True, metavar="SHARD.h5",
                   help="the shard files, e.g. shard*.h5")
    p.add_argument("--output", "-o", required=True, help="the merged data set (HDF5, conventions §4)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    return p


def check_distinct(paths: list[str]) -> list[str]:
    """``paths`` unchanged; ValueError when one file is named twice (a repeated shard would overlap itself)."""
    seen: set[Path] = set()
    for p in paths:
        key = Path(p).resolve()
        if key in seen:
            raise ValueError(f"--input names {p} twice: give each shard once")
        seen.add(key)
    return paths


def run(args: argparse.Namespace) -> int:
    from phonon_ml_core.simulator.dataset import merge_shards

    paths = check_distinct(args.input)
    out = merge_shards(paths, args.output, overwrite=args.overwrite)
    print(f"wrote {out}: {len(paths)} shard{'s' if len(paths) != 1 else ''} merged")
    return 0
