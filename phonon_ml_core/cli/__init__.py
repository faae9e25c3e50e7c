"""The ``phonon-ml`` command line: one module per subcommand (``register`` + ``run``), dispatched by ``app.main``."""
from phonon_ml_core.cli.app import main

__all__ = ["main"]
