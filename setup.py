"""phonon-ml: lattice dynamics from powder inelastic neutron scattering spectra."""
from pathlib import Path

from setuptools import find_packages, setup

# the shipped model bundles (models/<name>/*, and an ensemble's models/<name>/member_N/*) install under
# <prefix>/share/phonon-ml/models, where phonon_ml_core.prediction.predict.shipped_bundle_path looks when the package
# is not an editable checkout
MODEL_FILES = [(f"share/phonon-ml/{d.as_posix()}", sorted(str(f.as_posix()) for f in d.iterdir() if f.is_file()))
               for d in sorted(p for p in Path("models").rglob("*") if p.is_dir() and not p.name.startswith("."))]

setup(
    name="phonon-ml",
    version="0.1.0",
    description="Force constants from powder INS spectra: differentiable simulator, VAE and fits",
    long_description=Path("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="GPL-3.0-or-later",
    python_requires=">=3.10",
    packages=find_packages(include=["phonon_ml_core", "phonon_ml_core.*"]) + ["phonon_ml_core.mantid_algorithms"],
    # the Mantid algorithms in plugins/ ship as data (Mantid runs every .py in a plugin folder itself)
    package_dir={"phonon_ml_core.mantid_algorithms": "plugins"},
    package_data={"phonon_ml_core": ["specs/*.json", "specs/materials/*.json"],
                  "phonon_ml_core.mantid_algorithms": ["*.py"]},
    include_package_data=True,
    data_files=MODEL_FILES,
    install_requires=[
        "torch==2.13.0",
        "numpy>=1.24",
        "scipy>=1.10",
        "phonopy>=2.20",
        "resins>=0.1.0",
        "h5py>=3.8",
        "tqdm>=4.60",
        "matplotlib>=3.7",
        "safetensors>=0.4",
        "periodictable>=1.7",
        "PyYAML>=6",
    ],
    extras_require={
        # Dask executor of data sets (phonon-ml simulate --executor dask; docs/scaling.md)
        "scale": ["dask[distributed]==2026.8.0"],
        "test": ["pytest>=7", "euphonic>=1.3", "ruff==0.17.6", "dask[distributed]==2026.8.0"],
    },
    entry_points={"console_scripts": ["phonon-ml=phonon_ml_core.cli:main"]},
    classifiers=[
        "License :: OSI Approved :: GNU General Public License v3 or later (GPLv3+)",
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Physics",
    ],
)
