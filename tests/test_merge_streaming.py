"""The streaming merge of shards: the same file as stacking the shards in memory (every dataset and attribute),
with memory bounded by one block of rows whatever the number of shards; the one template writer and batch plan."""
from __future__ import annotations

import tracemalloc

import h5py
import numpy as np
import pytest

from phonon_ml_core.data.fileio import atomic_path
from phonon_ml_core.data.spectrum import Spectrum, write_spectrum_group
from phonon_ml_core.simulator.dataset import (
    SamplingConfig,
    batch_plan,
    generate_dataset,
    merge_shards,
    read_set_head,
)
from phonon_ml_core.simulator.settings import SimulationSettings

SETTINGS = SimulationSettings(mesh_density=4, bz_grid=4, dos_grid=6)
CONFIG = SamplingConfig(seed=11, temperature_range=(20.0, 400.0), linewidth_range=(0.0, 0.05))


def in_memory_merge(paths, output) -> None:
    """The merge as it was before streaming: every shard read whole, stacked, written once (the reference)."""
    parts = [Spectrum.from_hdf5(p) for p in paths]
    order = np.argsort([p.metadata["indices"][0] for p in parts], kind="stable")
    merged = Spectrum.stack([parts[i] for i in order])
    merged.metadata = dict(parts[order[0]].metadata)
    merged.metadata.pop("indices", None)
    merged.metadata["merged_from"] = [str(paths[i]) for i in order]
    with atomic_path(output) as tmp, h5py.File(tmp, "w") as f:
        write_spectrum_group(f, merged)


def assert_same_content(a, b) -> None:
    """Same datasets (names, dtypes, shapes, chunks, values bit for bit, attributes) and root attributes."""
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        assert sorted(fa) == sorted(fb) and sorted(fa.attrs) == sorted(fb.attrs)
        for k in fa:
            x, y = fa[k], fb[k]
            assert (x.dtype, x.shape, x.chunks) == (y.dtype, y.shape, y.chunks), k
            assert np.array_equal(x[()], y[()], equal_nan=x.dtype.kind == "f"), k
            assert {n: str(v) for n, v in x.attrs.items()} == {n: str(v) for n, v in y.attrs.items()}, k
        for k in fa.attrs:
            assert str(fa.attrs[k]) == str(fb.attrs[k]), k


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    d = tmp_path_factory.mktemp("shards")
    paths = [generate_dataset(d / f"s{i}.h5", 7, CONFIG, shard=(i, 3), settings=SETTINGS, batch_size=2,
                              progress=False) for i in range(3)]
    return d, paths


def test_streaming_merge_writes_the_in_memory_merge(shards):
    d, paths = shards
    given = [paths[2], paths[0], paths[1]]
    merge_shards(given, d / "stream.h5", block_rows=2)
    in_memory_merge(given, d / "reference.h5")
    assert_same_content(d / "stream.h5", d / "reference.h5")
    head, n = read_set_head(paths[1])
    assert n == 2 and head.n_spectra == 1
    assert head.metadata["indices"] == [2, 4] and head.linewidths().shape == (1,)


def test_merge_reads_one_block_at_a_time(tmp_path):
    """Peak Python/numpy memory of a merge is one block of rows, not the set: 4 and 16 shards of synthetic rows
    (written straight into the §4 layout by the same writer) merge with the same peak."""
    from phonon_ml_core.specs import ALUMINIUM, STANDARD_EXPERIMENT
    from phonon_ml_core.simulator.dataset import write_set_layout

    grid = STANDARD_EXPERIMENT.grid
    rows_per_shard = 8
    row_bytes = grid.shape[0] * grid.shape[1] * 4

    def make(n_shards: int) -> list:
        n = n_shards * rows_per_shard
        paths = []
        for i in range(n_shards):
            lo = i * rows_per_shard
            meta = {"n_total": n, "indices": [lo, lo + rows_per_shard], "sampling": {"seed": 0}}
            head = Spectrum(intensity=np.zeros((1, *grid.shape), np.float32), grid=grid, temperature=np.ones(1),
                            force_constants=np.ones((1, 5)), metadata=meta, material=ALUMINIUM,
                            experiment=STANDARD_EXPERIMENT)
            p = tmp_path / f"{n_shards}-{i}.h5"
            with h5py.File(p, "w") as f:
                rng = np.random.default_rng(i)
                write_set_layout(f, head, rows_per_shard,
                                 {"intensity": rng.random((rows_per_shard, *grid.shape), dtype=np.float32),
                                  "temperature": np.arange(lo, lo + rows_per_shard, dtype=float)})
            paths.append(p)
        return paths

    peaks = {}
    for n_shards in (4, 16):
        paths = make(n_shards)
        tracemalloc.start()
        merge_shards(paths, tmp_path / f"merged{n_shards}.h5", block_rows=2)
        peaks[n_shards] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        merged = Spectrum.from_hdf5(tmp_path / f"merged{n_shards}.h5")
        assert np.array_equal(merged.temperatures(), np.arange(n_shards * rows_per_shard))
    total16 = 16 * rows_per_shard * row_bytes
    assert peaks[16] < 0.25 * total16, (peaks, total16)  # far below the whole set (128 rows)
    assert peaks[16] < 1.3 * peaks[4], peaks  # does not grow with the number of shards


def test_the_one_batch_plan_orders_by_temperature_and_resumes():
    t = np.array([5.0, 1.0, 3.0, 1.0, 9.0])
    assert [b.tolist() for b in batch_plan(t, 2)] == [[1, 3], [0, 2], [4]]
    assert [b.tolist() for b in batch_plan(t, 2, start=2)] == [[0, 2], [4]]
    with pytest.raises(ValueError, match="batch_size"):
        batch_plan(t, 0)


def test_shards_with_one_value_for_all_spectra_merge_as_in_memory(tmp_path):
    """A shard may hold one temperature and one set of constants for all its spectra: broadcast, as stacking does."""
    from phonon_ml_core.specs import ALUMINIUM, STANDARD_EXPERIMENT

    grid = STANDARD_EXPERIMENT.grid
    paths = []
    for i, t in enumerate((100.0, 300.0)):
        meta = {"n_total": 6, "indices": [3 * i, 3 * i + 3]}
        s = Spectrum(intensity=np.full((3, *grid.shape), i + 0.5, np.float32), grid=grid, temperature=t,
                     force_constants=np.asarray(ALUMINIUM.reference_constants) * (1 + i), metadata=meta,
                     material=ALUMINIUM, experiment=STANDARD_EXPERIMENT)
        paths.append(tmp_path / f"s{i}.h5")
        s.to_hdf5(paths[-1])
    merge_shards(paths, tmp_path / "stream.h5", block_rows=2)
    in_memory_merge(paths, tmp_path / "reference.h5")
    assert_same_content(tmp_path / "stream.h5", tmp_path / "reference.h5")
