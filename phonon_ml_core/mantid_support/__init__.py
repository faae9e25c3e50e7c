"""Adapters between Mantid workspaces and the core, used by the algorithms in ``plugins/`` (Mantid imported lazily)."""
