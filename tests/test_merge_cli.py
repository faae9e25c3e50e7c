"""`phonon-ml merge`: the shards of one data set into one file; mismatched, missing or repeated shards refused."""
from __future__ import annotations

import numpy as np
import pytest

from phonon_ml_core.cli import main
from phonon_ml_core.data.spectrum import Spectrum

SIM = ["--mesh-density", "6", "--no-progress", "--batch-size", "4"]


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """A 9-spectrum set with a temperature range, whole and in 3 shards (seed 4), and one shard of seed 5."""
    d = tmp_path_factory.mktemp("shards")
    common = ["simulate", "--count", "9", "--temperature-range", "50,400", *SIM]
    assert main([*common, "--seed", "4", "--output", str(d / "whole.h5")]) == 0
    for i in range(3):
        assert main([*common, "--seed", "4", "--shard", f"{i}/3", "--output", str(d / f"shard{i}.h5")]) == 0
    assert main([*common, "--seed", "5", "--shard", "1/3", "--output", str(d / "other_seed.h5")]) == 0
    return d


def test_merge_gives_the_whole_set(shards, capsys):
    out = shards / "merged.h5"
    parts = [str(shards / f"shard{i}.h5") for i in (2, 0, 1)]  # any order
    assert main(["merge", "--input", *parts, "--output", str(out)]) == 0
    assert "3 shards merged" in capsys.readouterr().out
    whole, merged = Spectrum.from_hdf5(shards / "whole.h5"), Spectrum.from_hdf5(out)
    assert merged.material.same_as(whole.material) and merged.experiment.same_as(whole.experiment)
    np.testing.assert_array_equal(merged.force_constants, whole.force_constants)
    np.testing.assert_array_equal(merged.temperatures(), whole.temperatures())
    # shards batch the spectra differently from the whole run: equal to float32 rounding
    np.testing.assert_allclose(merged.intensity[:, whole.mask], whole.intensity[:, whole.mask], rtol=0, atol=1e-6)
    assert main(["merge", "--input", *parts, "--output", str(out)]) == 2  # no clobbering
    assert "--overwrite" in capsys.readouterr().err
    assert main(["merge", "--input", *parts, "--output", str(out), "--overwrite"]) == 0


@pytest.mark.parametrize("names, message", [
    (["shard0.h5", "shard1.h5"], "indices 6–8 are missing"),
    (["shard0.h5", "shard2.h5"], "leaves indices 3–5 out"),
    (["shard0.h5", "shard1.h5", "shard2.h5", "shard1.h5"], "shard1.h5 twice"),
    (["shard0.h5", "other_seed.h5", "shard2.h5"], "sampling differ"),
    (["shard0.h5", "absent.h5"], "absent.h5"),
    (["shard0.h5", "whole.h5"], "overlaps"),
])
def test_merge_refuses_shards_that_do_not_belong_together(shards, capsys, names, message):
    out = shards / "bad.h5"
    assert main(["merge", "--input", *[str(shards / n) for n in names], "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and "error" in err
    assert not out.exists()
    assert not [p for p in shards.iterdir() if p.name.startswith(".bad")]  # no temporary left behind


def test_merge_help_does_not_import_torch():
    from test_cli_startup import _probe

    code, heavy, output = _probe("merge", "--help")
    assert code == 0 and "--input" in output and heavy == []
