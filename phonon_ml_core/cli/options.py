"""Options shared by several subcommands."""
from __future__ import annotations

import argparse

#: The commands' own report folder (``phonon-ml demo`` writes ``phonon_ml_output/demo`` by default): output folders
#: under it are created with their parents; any other --output-dir needs an existing parent (a typo is refused).
OWN_OUTPUT_ROOT = "phonon_ml_output"


def add_bundle_output_options(p: argparse.ArgumentParser) -> None:
    """The options of commands that write a model bundle (train, finetune)."""
    p.add_argument("--overwrite", action="store_true", help="replace an existing bundle")
    p.add_argument("--weights-dtype", choices=("float32", "float16"), default="float32",
                   help="storage precision of the bundle's weights (float16: half the size; default float32)")
