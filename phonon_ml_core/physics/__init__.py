"""Lattice dynamics of monatomic cubic crystals: units, shell symmetry and the Born–von Kármán model."""
