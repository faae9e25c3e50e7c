"""Table-driven bad-input suite of every ``phonon-ml`` command (issue 18).

Each case runs the CLI in-process in an empty folder holding only the prepared inputs and asserts: exit code 2, a
message on stderr naming the problem (a key phrase, case-insensitive), no traceback, and no file or folder left
behind. Every error must come before heavy work: nothing here trains, fits or simulates a data set.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from phonon_ml_core.cli.app import main
from phonon_ml_core.specs.grid import standard_grid
from phonon_ml_core.data.normalization import mean_normalize
from phonon_ml_core.data.spectrum import Spectrum

FC = "10.35,10.38,-2.77,2.30,-0.25"


def _spectrum(values: np.ndarray, temperature=300.0, normalization="mean") -> Spectrum:
    return Spectrum(intensity=values, grid=standard_grid(), temperature=temperature, normalization=normalization)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """A folder of prepared inputs, good and bad (no simulation: random mean-normalised values)."""
    d = tmp_path_factory.mktemp("hostile_inputs")
    g = standard_grid()
    rng = np.random.default_rng(0)
    good = np.asarray(mean_normalize(rng.random(g.shape), g.mask), dtype=float)
    _spectrum(good).to_hdf5(d / "good.h5")
    _spectrum(np.full(g.shape, np.nan), normalization="none").to_hdf5(d / "allnan.h5")
    part = good.copy()
    part[g.mask.nonzero()[0][0], g.mask.nonzero()[1][0]] = np.nan
    _spectrum(part).to_hdf5(d / "partnan.h5")
    _spectrum(good, temperature=None).to_hdf5(d / "notemp.h5")
    _spectrum(good * 1e300, normalization="none").to_hdf5(d / "huge.h5")
    _spectrum(good * 7 + 3).to_hdf5(d / "fakenorm.h5")
    Spectrum.stack([_spectrum(good)]).to_hdf5(d / "one_set.h5")
    (d / "text.h5").write_text("not an HDF5 file\n")
    import h5py
    for name, change in (("descq.h5", lambda q: q[::-1]), ("nanq.h5", lambda q: np.where(q > 3, np.nan, q))):
        (d / name).write_bytes((d / "good.h5").read_bytes())
        with h5py.File(d / name, "a") as f:
            f["q"][...] = change(f["q"][()])
    (d / "result_bad.json").write_text("{not json")
    (d / "afile").write_text("x")
    (d / "binary.properties").write_bytes(b"\xff\xfe\x00bad")
    (d / "result_list.json").write_text("[1, 2]")
    (d / "result_empty.json").write_text("[]")
    (d / "folder").mkdir()
    _spectrum(good).to_hdf5(d / "good_again.h5")                       # a second spectrum at 300 K
    _spectrum(good, temperature=200.0).to_hdf5(d / "good200.h5")
    from phonon_ml_core.specs import get_material
    Spectrum(intensity=good, grid=g, temperature=300.0, normalization="mean",
             material=get_material("Cu")).to_hdf5(d / "cu.h5")
    (d / "bad.yaml").write_text("name: [unclosed\n")
    (d / "partial.json").write_text('{"name": "Foo", "element": "Zz"}')
    os.mkfifo(d / "pipe.h5")
    os.mkfifo(d / "pipe.json")
    return d


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


# (id, argv with {in} = the inputs folder, key phrase of the message)
CASES = [
    # simulate
    ("sim-neither", ["simulate", "-o", "a.h5"], "either --force-constants"),
    ("sim-both", ["simulate", "--force-constants", FC, "--count", "3", "-o", "a.h5"], "either"),
    ("sim-fc-count", ["simulate", "--force-constants", "1,2,3", "--temperature", "300", "-o", "a.h5"], "expected 5"),
    ("sim-fc-text", ["simulate", "--force-constants", "a,b,c,d,e", "--temperature", "300", "-o", "a.h5"],
     "comma-separated numbers"),
    ("sim-fc-nan", ["simulate", "--force-constants", "nan,1,1,1,1", "--temperature", "300", "-o", "a.h5"], "finite"),
    ("sim-no-temp", ["simulate", "--force-constants", FC, "-o", "a.h5"], "--temperature"),
    ("sim-temp-neg", ["simulate", "--force-constants", FC, "--temperature", "-3", "-o", "a.h5"], "--temperature"),
    ("sim-temp-zero", ["simulate", "--force-constants", FC, "--temperature", "0", "-o", "a.h5"], "positive"),
    ("sim-temp-nan", ["simulate", "--force-constants", FC, "--temperature", "nan", "-o", "a.h5"], "finite"),
    ("sim-temp-inf", ["simulate", "--force-constants", FC, "--temperature", "inf", "-o", "a.h5"], "finite"),
    ("sim-temp-huge", ["simulate", "--force-constants", FC, "--temperature", "1e9", "-o", "a.h5"], "at most"),
    ("sim-count-0", ["simulate", "--count", "0", "-o", "a.h5"], "--count"),
    ("sim-count-neg", ["simulate", "--count", "-5", "-o", "a.h5"], "--count"),
    ("sim-count-huge", ["simulate", "--count", "100000000000", "-o", "a.h5"], "gib"),
    ("sim-seed-neg", ["simulate", "--count", "3", "--seed", "-1", "-o", "a.h5"], "--seed"),
    ("sim-batch-0", ["simulate", "--count", "3", "--batch-size", "0", "-o", "a.h5"], "--batch-size"),
    ("sim-mesh-0", ["simulate", "--count", "3", "--mesh-density", "0", "-o", "a.h5"], "--mesh-density"),
    ("sim-ei-neg", ["simulate", "--force-constants", FC, "--temperature", "300", "--ei", "-50", "-o", "a.h5"],
     "--ei"),
    ("sim-ei-nan", ["simulate", "--force-constants", FC, "--temperature", "300", "--ei", "nan", "-o", "a.h5"],
     "--ei"),
    ("sim-lattice-0", ["simulate", "--force-constants", FC, "--temperature", "300", "--lattice-parameter", "0",
                       "-o", "a.h5"], "--lattice-parameter"),
    ("sim-linewidth-neg", ["simulate", "--force-constants", FC, "--temperature", "300", "--linewidth", "-0.1",
                           "-o", "a.h5"], "--linewidth"),
    ("sim-chopper-freq", ["simulate", "--force-constants", FC, "--temperature", "300", "--chopper-frequency", "0",
                          "-o", "a.h5"], "--chopper-frequency"),
    ("sim-trange-rev", ["simulate", "--count", "3", "--temperature-range", "300,100", "-o", "a.h5"], "reversed"),
    ("sim-trange-neg", ["simulate", "--count", "3", "--temperature-range", "-10,100", "-o", "a.h5"],
     "--temperature-range"),
    ("sim-range-rev", ["simulate", "--count", "3", "--range", "1.5,0.5", "-o", "a.h5"], "reversed"),
    ("sim-lwrange-rev", ["simulate", "--count", "3", "--linewidth-range", "0.2,0.1", "-o", "a.h5"], "reversed"),
    ("sim-crange-name", ["simulate", "--count", "3", "--constant-range", "9QQ=1,2", "-o", "a.h5"], "NAME=LO,HI"),
    ("sim-crange-rev", ["simulate", "--count", "3", "--constant-range", "2YY=1,-1", "-o", "a.h5"], "below"),
    ("sim-device", ["simulate", "--count", "3", "--device", "tpu", "-o", "a.h5"], "not a torch device"),
    ("sim-out-nodir", ["simulate", "--force-constants", FC, "--temperature", "300", "-o", "nodir/a.h5"],
     "does not exist"),
    ("sim-out-parent-file", ["simulate", "--force-constants", FC, "--temperature", "300", "-o", "{in}/afile/a.h5"],
     "not a folder"),
    ("sim-out-exists", ["simulate", "--force-constants", FC, "--temperature", "300", "-o", "{in}/good.h5"],
     "already exists"),
    ("sim-out-dir", ["simulate", "--force-constants", FC, "--temperature", "300", "-o", "{in}/folder",
                     "--overwrite"], "directory"),
    ("sim-plot-nodir", ["simulate", "--force-constants", FC, "--temperature", "300", "-o", "a.h5", "--plot",
                        "nodir/a.png"], "--plot nodir/a.png: the output folder nodir does not exist"),
    ("sim-plot-suffix", ["simulate", "--force-constants", FC, "--temperature", "300", "-o", "a.h5", "--plot",
                         "a.h5x"], ".png"),
    ("sim-plot-same", ["simulate", "--force-constants", FC, "--temperature", "300", "-o", "a.h5", "--plot", "a.h5"],
     "same path"),
    # dispersion
    ("disp-suffix", ["dispersion", "-o", "x.h5"], "ending in"),
    ("disp-fc-count", ["dispersion", "--force-constants", "1,2", "-o", "x.png"], "1XX"),
    ("disp-fc-text", ["dispersion", "--force-constants", "a,b", "-o", "x.png"], "comma-separated"),
    ("disp-result-missing", ["dispersion", "--result", "nofile.json", "-o", "x.png"], "does not exist"),
    ("disp-result-list", ["dispersion", "--result", "{in}/result_list.json", "-o", "x.png"], "force_constants"),
    ("disp-result-empty", ["dispersion", "--result", "{in}/result_empty.json", "-o", "x.png"], "no result entries"),
    ("disp-result-bad", ["dispersion", "--result", "{in}/result_bad.json", "-o", "x.png"], "result_bad.json"),
    ("disp-entry-neg", ["dispersion", "--entry", "-1", "-o", "x.png"], "--entry"),
    ("disp-temp", ["dispersion", "--temperature", "-5", "-o", "x.png"], "--temperature"),
    ("disp-lattice", ["dispersion", "--lattice-parameter", "-4", "-o", "x.png"], "--lattice-parameter"),
    ("disp-material", ["dispersion", "--material", "Xx", "-o", "x.png"], "xx"),
    ("disp-material-file", ["dispersion", "--material", "nofile.json", "-o", "x.png"], "does not exist"),
    ("disp-shells", ["dispersion", "--material", "Al", "--shells", "0", "-o", "x.png"], "--shells"),
    ("disp-csv-nodir", ["dispersion", "-o", "x.png", "--csv", "nodir/x.csv"], "does not exist"),
    ("disp-csv-exists", ["dispersion", "-o", "x.png", "--csv", "{in}/afile"], "--csv"),
    # preprocess
    ("pre-missing", ["preprocess", "--input", "nofile.nxs", "--output", "o.h5"], "does not exist"),
    ("pre-dir", ["preprocess", "--input", "{in}/folder", "--output", "o.h5"], "folder"),
    ("pre-fifo", ["preprocess", "--input", "{in}/pipe.h5", "--output", "o.h5"], "not a regular file"),
    ("pre-text", ["preprocess", "--input", "{in}/text.h5", "--output", "o.h5"], "text.h5"),
    ("pre-desc-q", ["preprocess", "--input", "{in}/descq.h5", "--output", "o.h5"], "/q axis (1/Å) is descending"),
    ("pre-nan-q", ["preprocess", "--input", "{in}/nanq.h5", "--output", "o.h5"], "/q axis (1/Å) has"),
    ("fit-desc-q", ["fit", "--input", "{in}/descq.h5", "--output", "r.json"], "descq.h5: the /q axis"),
    ("pred-nan-q", ["predict", "--input", "{in}/nanq.h5", "--output", "r.json"], "nanq.h5: the /q axis"),
    ("pre-temp-neg", ["preprocess", "--input", "{in}/good.h5", "--output", "o.h5", "--temperature", "-3"],
     "--temperature"),
    ("pre-temp-huge", ["preprocess", "--input", "{in}/good.h5", "--output", "o.h5", "--temperature", "1e9"],
     "at most"),
    ("pre-coverage", ["preprocess", "--input", "{in}/good.h5", "--output", "o.h5", "--min-coverage", "2"],
     "--min-coverage"),
    ("pre-ei", ["preprocess", "--input", "{in}/good.h5", "--output", "o.h5", "--ei", "0"], "--ei"),
    ("pre-allnan", ["preprocess", "--input", "{in}/allnan.h5", "--output", "o.h5"], "all nan"),
    ("pre-same", ["preprocess", "--input", "{in}/good.h5", "--output", "{in}/good.h5", "--overwrite"],
     "also an input"),
    ("pre-out-nodir", ["preprocess", "--input", "{in}/good.h5", "--output", "nodir/o.h5"], "does not exist"),
    ("pre-background", ["preprocess", "--input", "{in}/good.h5", "--output", "o.h5", "--background", "zzz"],
     "invalid choice"),
    # train
    ("train-missing", ["train", "--data", "nofile.h5", "--output", "b"], "does not exist"),
    ("train-fifo", ["train", "--data", "{in}/pipe.h5", "--output", "b"], "not a regular file"),
    ("train-one", ["train", "--data", "{in}/one_set.h5", "--output", "b"], "at least"),
    ("train-single", ["train", "--data", "{in}/good.h5", "--output", "b"], "at least"),
    ("train-epochs-0", ["train", "--data", "{in}/good.h5", "--output", "b", "--epochs", "0"], "--epochs"),
    ("train-latent-0", ["train", "--data", "{in}/good.h5", "--output", "b", "--latent-dim", "0"], "--latent-dim"),
    ("train-lr-0", ["train", "--data", "{in}/good.h5", "--output", "b", "--lr", "0"], "--lr"),
    ("train-lr-nan", ["train", "--data", "{in}/good.h5", "--output", "b", "--lr", "nan"], "--lr"),
    ("train-kl-neg", ["train", "--data", "{in}/good.h5", "--output", "b", "--kl-weight", "-1"], "--kl-weight"),
    ("train-batch-0", ["train", "--data", "{in}/good.h5", "--output", "b", "--batch-size", "0"], "--batch-size"),
    ("train-patience-0", ["train", "--data", "{in}/good.h5", "--output", "b", "--patience", "0"], "--patience"),
    ("train-ckpt-0", ["train", "--data", "{in}/good.h5", "--output", "b", "--checkpoint-every", "0"],
     "--checkpoint-every"),
    ("train-noise-neg", ["train", "--data", "{in}/good.h5", "--output", "b", "--augment-noise", "-1"],
     "--augment-noise"),
    ("train-degree", ["train", "--data", "{in}/good.h5", "--output", "b", "--background-degree", "9"], "0–6"),
    ("train-finetune-missing", ["train", "--data", "{in}/good.h5", "--output", "b", "--finetune", "no.h5"],
     "does not exist"),
    ("train-out-nodir", ["train", "--data", "{in}/one_set.h5", "--output", "nodir/b"], "at least"),
    # predict
    ("pred-missing", ["predict", "--input", "nofile.h5", "-o", "r.json"], "does not exist"),
    ("pred-fifo", ["predict", "--input", "{in}/pipe.h5", "-o", "r.json"], "not a regular file"),
    ("pred-text", ["predict", "--input", "{in}/text.h5", "-o", "r.json"], "text.h5"),
    ("pred-model-missing", ["predict", "--model", "nobundle", "--input", "{in}/good.h5", "-o", "r.json"],
     "does not exist"),
    ("pred-samples-0", ["predict", "--input", "{in}/good.h5", "-o", "r.json", "--samples", "0"], "--samples"),
    ("pred-temp-neg", ["predict", "--input", "{in}/good.h5", "-o", "r.json", "--temperature", "-3"],
     "--temperature"),
    ("pred-allnan", ["predict", "--input", "{in}/allnan.h5", "-o", "r.json"], "nan"),
    ("pred-notemp", ["predict", "--input", "{in}/notemp.h5", "-o", "r.json"], "no temperature"),
    ("pred-fakenorm", ["predict", "--input", "{in}/fakenorm.h5", "-o", "r.json"], "mean normalisation"),
    ("pred-out-exists", ["predict", "--input", "{in}/good.h5", "-o", "{in}/afile"], "already exists"),
    ("pred-plot-nodir", ["predict", "--input", "{in}/good.h5", "-o", "r.json", "--plot", "nodir/p.png"],
     "does not exist"),
    ("pred-material", ["predict", "--input", "{in}/good.h5", "-o", "r.json", "--material", "Fe"], "trained for"),
    # finetune
    ("ft-missing", ["finetune", "--input", "nofile.h5", "-o", "b2"], "does not exist"),
    ("ft-steps-0", ["finetune", "--input", "{in}/good.h5", "-o", "b2", "--steps", "0"], "--steps"),
    ("ft-lr-neg", ["finetune", "--input", "{in}/good.h5", "-o", "b2", "--lr", "-1"], "--lr"),
    ("ft-temp", ["finetune", "--input", "{in}/good.h5", "-o", "b2", "--temperature", "0"], "--temperature"),
    ("ft-model-missing", ["finetune", "--model", "nobundle", "--input", "{in}/good.h5", "-o", "b2"],
     "does not exist"),
    # fit
    ("fit-missing", ["fit", "--input", "nofile.h5", "--output", "r.json"], "does not exist"),
    ("fit-fifo", ["fit", "--input", "{in}/pipe.h5", "--output", "r.json"], "not a regular file"),
    ("fit-dir", ["fit", "--input", "{in}/folder", "--output", "r.json"], "folder"),
    ("fit-maxeval-0", ["fit", "--input", "{in}/good.h5", "--output", "r.json", "--max-evaluations", "0"],
     "--max-evaluations"),
    ("fit-temp-neg", ["fit", "--input", "{in}/good.h5", "--output", "r.json", "--temperature", "-3"],
     "--temperature"),
    ("fit-temp-huge", ["fit", "--input", "{in}/good.h5", "--output", "r.json", "--temperature", "1e9"], "at most"),
    ("fit-lattice", ["fit", "--input", "{in}/good.h5", "--output", "r.json", "--lattice-parameter", "0"],
     "--lattice-parameter"),
    ("fit-start-count", ["fit", "--input", "{in}/good.h5", "--output", "r.json", "--start", "1,2"], "finite numbers"),
    ("fit-start-text", ["fit", "--input", "{in}/good.h5", "--output", "r.json", "--start", "a,b"],
     "comma-separated"),
    ("fit-allnan", ["fit", "--input", "{in}/allnan.h5", "--output", "r.json"], "nan"),
    ("fit-notemp", ["fit", "--input", "{in}/notemp.h5", "--output", "r.json"], "temperature"),
    ("fit-material", ["fit", "--input", "{in}/good.h5", "--output", "r.json", "--material", "Xx"], "xx"),
    ("fit-shells-0", ["fit", "--input", "{in}/good.h5", "--output", "r.json", "--shells", "0"], "--shells"),
    ("fit-instrument", ["fit", "--input", "{in}/good.h5", "--output", "r.json", "--instrument", "NOPE"], "nope"),
    ("fit-plot-suffix", ["fit", "--input", "{in}/good.h5", "--output", "r.json", "--plot", "p.jpg.h5"], ".png"),
    ("fit-out-same", ["fit", "--input", "{in}/good.h5", "--output", "{in}/good.h5", "--overwrite"], "also an input"),
    ("fit-method", ["fit", "--input", "{in}/good.h5", "--output", "r.json", "--method", "magic"], "invalid choice"),
    ("fit-huge", ["fit", "--input", "{in}/huge.h5", "-o", "r.json"], "out of any sensible range"),
    ("fit-ei-h5", ["fit", "--input", "{in}/good.h5", "-o", "r.json", "--ei", "30"], "preprocessed spectrum"),
    ("fit-cu-as-al", ["fit", "--input", "{in}/cu.h5", "-o", "r.json", "--material", "Al"], "holds spectra of cu"),
    ("fit-mixed-materials", ["fit", "--input", "{in}/good.h5", "{in}/cu.h5", "-o", "r.json"], "different materials"),
    ("fit-material-bad-json", ["fit", "--input", "{in}/good.h5", "-o", "r.json", "--material", "{in}/result_bad.json"],
     "result_bad.json"),
    ("fit-material-bad-yaml", ["fit", "--input", "{in}/good.h5", "-o", "r.json", "--material", "{in}/bad.yaml"],
     "bad.yaml"),
    ("fit-material-list", ["fit", "--input", "{in}/good.h5", "-o", "r.json", "--material", "{in}/result_list.json"],
     "mapping"),
    ("fit-material-partial", ["fit", "--input", "{in}/good.h5", "-o", "r.json", "--material", "{in}/partial.json"],
     "missing field"),
    ("fit-material-missing", ["fit", "--input", "{in}/good.h5", "-o", "r.json", "--material", "no/mat.yaml"],
     "does not exist"),
    ("fit-chopper-freq", ["fit", "--input", "{in}/good.h5", "-o", "r.json", "--instrument", "MARI",
                          "--chopper-frequency", "7"], "not allowed"),
    ("fit-chopper", ["fit", "--input", "{in}/good.h5", "-o", "r.json", "--chopper", "NOPE"], "nope"),
    # fit --joint
    ("joint-one", ["fit", "--joint", "--input", "{in}/good.h5", "-o", "r.json"], "at least two spectra"),
    ("joint-same-t-free", ["fit", "--joint", "--series-model", "free", "--input", "{in}/good.h5",
                           "{in}/good_again.h5", "{in}/good200.h5", "-o", "r.json"], "both at t = 300 k"),
    ("joint-same-t-linear", ["fit", "--joint", "--input", "{in}/good.h5", "{in}/good_again.h5", "-o", "r.json"],
     "distinct temperatures"),
    ("joint-quadratic-2t", ["fit", "--joint", "--series-model", "quadratic", "--input", "{in}/good.h5",
                            "{in}/good200.h5", "-o", "r.json"], "at least 3 distinct"),
    ("joint-temperature-flag", ["fit", "--joint", "--input", "{in}/good.h5", "{in}/good200.h5", "-o", "r.json",
                                "--temperature", "250"], "drop --temperature"),
    ("joint-mixed", ["fit", "--joint", "--input", "{in}/good200.h5", "{in}/cu.h5", "-o", "r.json"],
     "different materials"),
    ("joint-smoothness", ["fit", "--joint", "--input", "{in}/good.h5", "{in}/good200.h5", "-o", "r.json",
                          "--smoothness", "1"], "--series-model free"),
    ("joint-lattice", ["fit", "--joint", "--input", "{in}/good.h5", "{in}/good200.h5", "-o", "r.json",
                       "--lattice-parameter", "4.05"], "cannot be used with --joint"),
    ("joint-flags-without", ["fit", "--input", "{in}/good.h5", "-o", "r.json", "--series-model", "free"],
     "need --joint"),
    ("joint-model-bad", ["fit", "--joint", "--input", "{in}/good.h5", "{in}/good200.h5", "-o", "r.json",
                         "--series-model", "cubic"], "invalid choice"),
    # instruments and Ei (simulate)
    ("sim-ei-range", ["simulate", "--force-constants", FC, "--temperature", "300", "--instrument", "CNCS", "--ei",
                      "200", "-o", "a.h5"], "outside the range"),
    ("sim-instrument", ["simulate", "--force-constants", FC, "--temperature", "300", "--instrument", "NOPE",
                        "-o", "a.h5"], "nope"),
    ("sim-chopper-bad", ["simulate", "--force-constants", FC, "--temperature", "300", "--instrument", "ARCS",
                         "--chopper", "NOPE", "-o", "a.h5"], "not available on arcs"),
    ("sim-material-fc", ["simulate", "--material", "Fe", "--force-constants", FC, "--temperature", "300",
                         "-o", "a.h5"], "2yy"),
    ("sim-material-yaml", ["simulate", "--material", "{in}/bad.yaml", "--force-constants", FC, "--temperature",
                           "300", "-o", "a.h5"], "bad.yaml"),
    # bundles of one material on another material's data
    ("pred-cu-data", ["predict", "--input", "{in}/cu.h5", "-o", "r.json"], "bundle was trained for al"),
    ("pred-ei-h5", ["predict", "--input", "{in}/good.h5", "-o", "r.json", "--ei", "30"], "preprocessed spectrum"),
    ("pred-material-cu", ["predict", "--input", "{in}/good.h5", "-o", "r.json", "--material", "Cu"],
     "trained for al"),
    ("pred-model-file", ["predict", "--model", "{in}/afile", "--input", "{in}/good.h5", "-o", "r.json"], "afile"),
    ("mat-bad-yaml", ["materials", "{in}/bad.yaml"], "bad.yaml"),
    ("mat-partial", ["materials", "{in}/partial.json"], "missing field"),
    # evaluate
    ("eval-nsim-0", ["evaluate", "-o", "ev", "--n-simulated", "0"], "--n-simulated"),
    ("eval-epochs-0", ["evaluate", "-o", "ev", "--epochs", "0"], "--epochs"),
    ("eval-samples-0", ["evaluate", "-o", "ev", "--samples", "0"], "--samples"),
    ("eval-out-file", ["evaluate", "-o", "{in}/afile"], "not a folder"),
    ("eval-out-nodir", ["evaluate", "-o", "nodir/ev"], "does not exist"),
    ("eval-data-missing", ["evaluate", "-o", "ev", "--data", "nofile.h5"], "does not exist"),
    ("eval-measured-fifo", ["evaluate", "-o", "ev", "--measured", "{in}/pipe.h5"], "not a regular file"),
    ("eval-threshold", ["evaluate", "-o", "ev", "--latent-threshold", "-1"], "--latent-threshold"),
    # latent-analysis
    ("lat-missing", ["latent-analysis", "--data", "nofile.h5", "-o", "lat"], "does not exist"),
    ("lat-one", ["latent-analysis", "--data", "{in}/good.h5", "-o", "lat"], "at least 2"),
    ("lat-delta-0", ["latent-analysis", "--data", "{in}/good.h5", "-o", "lat", "--delta", "0"], "--delta"),
    ("lat-threshold", ["latent-analysis", "--data", "{in}/good.h5", "-o", "lat", "--threshold", "nan"], "finite"),
    ("lat-max-0", ["latent-analysis", "--data", "{in}/good.h5", "-o", "lat", "--max-spectra", "0"], "--max-spectra"),
    ("lat-out-file", ["latent-analysis", "--data", "{in}/good.h5", "-o", "{in}/afile"], "not a folder"),
    # demo
    ("demo-noise-neg", ["demo", "--output-dir", "dd", "--noise", "-1"], "--noise"),
    ("demo-noise-nan", ["demo", "--output-dir", "dd", "--noise", "nan"], "finite"),
    ("demo-samples-0", ["demo", "--output-dir", "dd", "--samples", "0"], "--samples"),
    ("demo-methods", ["demo", "--output-dir", "dd", "--methods", "magic"], "--methods"),
    ("demo-temp-noinput", ["demo", "--output-dir", "dd", "--temperature", "300"], "--input"),
    ("demo-input-missing", ["demo", "--output-dir", "dd", "--input", "nofile.nxs"], "does not exist"),
    ("demo-out-file", ["demo", "--output-dir", "{in}/afile"], "not a folder"),
    ("demo-out-nodir", ["demo", "--output-dir", "nodir/dd"], "does not exist"),
    ("demo-out-under-file", ["demo", "--output-dir", "{in}/afile/dd"], "afile exists and is not a folder"),
    # materials
    ("mat-unknown", ["materials", "Xx"], "xx"),
    ("mat-missing-file", ["materials", "nofile.json"], "does not exist"),
    ("mat-bad-file", ["materials", "{in}/result_bad.json"], "result_bad.json"),
    ("mat-fifo", ["materials", "{in}/pipe.json"], "not a regular file"),
    # mantid-register
    ("mr-props-binary", ["mantid-register", "--properties-file", "{in}/binary.properties"], "binary.properties"),
    ("mr-props-fifo", ["mantid-register", "--properties-file", "{in}/pipe.h5"], "not a regular file"),
    ("mr-props-parent-file", ["mantid-register", "--properties-file", "{in}/afile/Mantid.user.properties"],
     "not a folder"),
    ("mr-props-nodir", ["mantid-register", "--properties-file", "nodir/Mantid.user.properties"], "does not exist"),
    ("mr-props-dir", ["mantid-register", "--properties-file", "{in}/folder"], "folder"),
]


@pytest.mark.parametrize("case_id,argv,phrase", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused(case_id, argv, phrase, inputs, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = [a.replace("{in}", str(inputs)) for a in argv]
    before = _tree(inputs)
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse's own errors (choices, types) also exit 2
        rc = exc.code
    err = capsys.readouterr().err
    assert rc == 2, f"{case_id}: exit {rc}, stderr {err!r}"
    assert phrase.lower() in err.lower(), f"{case_id}: {phrase!r} not in {err!r}"
    assert "Traceback" not in err
    assert _tree(tmp_path) == set(), f"{case_id}: left behind {_tree(tmp_path)}"
    assert _tree(inputs) == before, f"{case_id}: changed the inputs folder"


def test_fit_shells_alone_takes_the_inputs_material(inputs, tmp_path, monkeypatch):
    """`fit --shells N` without --material (the README's example) fits each input's recorded material (aluminium
    when none) with N shells, as `simulate --shells` and `dispersion --shells` take aluminium."""
    from phonon_ml_core.specs import get_material

    monkeypatch.chdir(tmp_path)
    for name, element in (("good.h5", "Al"), ("cu.h5", "Cu")):
        assert main(["fit", "--input", str(inputs / name), "--output", f"{element}.json", "--shells", "3",
                     "--method", "gradient", "--max-evaluations", "5"]) == 0
        doc = json.loads((tmp_path / f"{element}.json").read_text())
        assert doc["names"] == list(get_material(element, 3).names) and len(doc["names"]) > 5
        assert doc["results"][0]["material_spec"]["element"] == element


def test_own_output_root_is_created_but_not_over_a_file(tmp_path, monkeypatch, capsys):
    """--output-dir under phonon_ml_output/ (the demo's default) gets its parents made; a file in the way is refused."""
    from phonon_ml_core.cli.checks import check_arguments
    from phonon_ml_core.cli.app import build_parser

    monkeypatch.chdir(tmp_path)
    check_arguments(build_parser().parse_args(["demo", "--output-dir", "phonon_ml_output/a/b"]))  # no error
    assert not (tmp_path / "phonon_ml_output").exists()  # the check makes nothing; the demo makes the folders
    (tmp_path / "phonon_ml_output").write_text("x")
    assert main(["demo"]) == 2
    assert "phonon_ml_output exists and is not a folder" in capsys.readouterr().err


def test_table_is_large_and_covers_every_command():
    commands = {c[1][0] for c in CASES}
    assert len(CASES) >= 90
    assert commands >= {"simulate", "dispersion", "preprocess", "train", "predict", "finetune", "fit", "evaluate",
                        "latent-analysis", "demo", "materials", "mantid-register"}
