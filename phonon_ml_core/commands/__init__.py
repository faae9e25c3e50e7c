"""Subcommands of the phonon-ml CLI, one module each (register/run)."""
