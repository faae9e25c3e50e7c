"""Options shared by several subcommands."""
from __future__ import annotations

import argparse


def add_bundle_output_options(p: argparse.ArgumentParser) -> None:
    """The options of commands that write a model bundle (train, finetune)."""
    p.add_argument("--overwrite", action="store_true", help="replace an existing bundle")
    p.add_argument("--weights-dtype", choices=("float32", "float16"), default="float32",
                   help="storage precision of the bundle's weights (float16: half the size; default float32)")
