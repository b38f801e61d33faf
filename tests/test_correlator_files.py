"""Users' correlator files (correlator_files.py): each format written by its own library where
there is one (pyerrors, lsdensities; gvar's data sets are text, checked against gvar's own
averages) reads back into the same per-configuration values as the project's HDF5 layout, and
one malformed file per format is refused with a message naming file and key."""
import gzip
import json
import warnings

import h5py
import numpy as np
import pytest
from conftest import need

from correlator_files import bin_samples, detect_format, fold_correlator, read_correlator, resample
from io_utils import InputError


def configurations(n_cfg=24, T=8, seed=3):
    """Positive, t-correlated per-configuration correlators [n_cfg, T] (t = 0..T-1)."""
    rng = np.random.default_rng(seed)
    t = np.arange(T)
    clean = np.exp(-0.4 * t) + np.exp(-0.4 * (T - t))
    return clean * (1 + 0.05 * np.cumsum(rng.standard_normal((n_cfg, T)), axis=1) / np.sqrt(T))


def write_hdf5(path, values, **attrs):
    with h5py.File(path, "w") as h5:
        h5["samples"] = values
        h5["t"] = np.arange(values.shape[1], dtype=float)
        h5.attrs.update({"sample_kind": "configurations", **attrs})
    return path


def write_pyerrors(path, values, as_corr=True):
    pe = need("pyerrors")
    obs = [pe.Obs([values[:, t]], ["ens|r0"]) for t in range(values.shape[1])]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pe.input.json.dump_to_json(pe.Corr(obs) if as_corr else obs, str(path).removesuffix(".json.gz")
                                   .removesuffix(".json"), gz=str(path).endswith(".gz"))
    return path


def write_gvar(path, values, tag="etas", other=None):
    """A gvar/corrfitter data set: the rows of a gvar.dataset.Dataset as 'TAG v0 v1 ...' lines
    (gvar reads this format but has no writer for it)."""
    gv = need("gvar")
    dataset = gv.dataset.Dataset()
    for row in values:
        dataset.append(tag, row)
    lines = [f"{tag} " + " ".join(f"{v:.17g}" for v in row) for row in dataset[tag]]
    if other is not None:                         # a second correlator, interleaved
        lines = [line for pair in zip(lines, [f"{other} 1 2 3"] * len(lines)) for line in pair]
    path.write_text("# a corrfitter data set\n" + "\n".join(lines) + "\n")
    return path


def write_lsdensities(path, values):
    rho_utils = need("lsdensities.utils.rhoUtils")
    rho_utils.print_hlt_format(values, values.shape[1], values.shape[0], path.name, str(path.parent))
    return path


# --- every format gives the HDF5 path's values ----------------------------------------------------
def test_every_format_reads_the_same_configurations(tmp_path):
    x = configurations()
    reference = read_correlator(write_hdf5(tmp_path / "c.h5", x))
    assert (reference.fmt, reference.kind) == ("hdf5", "configurations")
    np.save(tmp_path / "c.npy", x)
    (tmp_path / "c.txt").write_text("\n".join(" ".join(f"{v:.17g}" for v in row) for row in x))
    (tmp_path / "c.csv").write_text("\n".join(",".join(f"{v:.17g}" for v in row) for row in x))
    files = {"c.npy": "npy", "c.txt": "text", "c.csv": "text",
             "c.json.gz": "pyerrors", "l.json": "pyerrors", "c.data": "gvar", "c.dat": "lsdensities"}
    write_pyerrors(tmp_path / "c.json.gz", x)
    write_pyerrors(tmp_path / "l.json", x, as_corr=False)
    write_gvar(tmp_path / "c.data", x)
    write_lsdensities(tmp_path / "c.dat", x)
    for name, fmt in files.items():
        assert detect_format(tmp_path / name) == fmt, name
        corr = read_correlator(tmp_path / name)
        assert corr.fmt == fmt and corr.kind == "configurations"
        np.testing.assert_array_equal(corr.slices, reference.t)
        if fmt == "pyerrors":          # pyerrors stores the mean and the deltas: round-off
            np.testing.assert_allclose(corr.values, x, rtol=4e-16, atol=0, err_msg=name)
        else:
            np.testing.assert_array_equal(corr.values, x, err_msg=name)
    assert read_correlator(tmp_path / "c.dat").T == x.shape[1]     # lsdensities' header states T


def test_readers_agree_with_the_libraries_own_readers(tmp_path):
    """gvar's own averages and lsdensities' own reader see what we read."""
    x = configurations()
    gv = need("gvar")
    path = write_gvar(tmp_path / "two.gvar", x, other="pion")
    corr = read_correlator(path, tag="etas")
    averaged = gv.dataset.avg_data(gv.dataset.Dataset(str(path)))["etas"]
    np.testing.assert_allclose(gv.mean(averaged), corr.values.mean(axis=0), rtol=1e-14)
    # gvar's avg_data divides the sample covariance by N (ddof 0), then by N for the mean
    np.testing.assert_allclose(gv.evalcov(averaged), np.cov(corr.values, rowvar=False, bias=True) / len(x),
                               rtol=1e-10, atol=1e-14 * np.abs(gv.evalcov(averaged)).max())
    assert read_correlator(path, tag="pion").values.shape == (len(x), 3)
    rho_utils = need("lsdensities.utils.rhoUtils")
    obs, T, n_ms = rho_utils.read_datafile(str(write_lsdensities(tmp_path / "c.dat", x)))
    np.testing.assert_array_equal(read_correlator(tmp_path / "c.dat").values, obs.sample)
    assert (T, n_ms) == x.shape[::-1]


def test_pyerrors_replicas_are_concatenated(tmp_path):
    pe = need("pyerrors")
    x = configurations(n_cfg=30)
    obs = [pe.Obs([x[:12, t], x[12:, t]], ["ens|r0", "ens|r1"]) for t in range(x.shape[1])]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pe.input.json.dump_to_json(pe.Corr(obs), str(tmp_path / "r"))
    corr = read_correlator(tmp_path / "r.json.gz")
    np.testing.assert_allclose(corr.values, x, rtol=4e-16, atol=0)
    assert corr.details["replicas"] == ["ens|r0", "ens|r1"] and corr.details["configurations_per_replica"] == [12, 18]


# --- one malformed file per format ----------------------------------------------------------------
def malformed(tmp_path, fmt):
    """(path, tag, expected message) of a broken file in format ``fmt``."""
    x = configurations()
    if fmt == "hdf5":
        path = tmp_path / "bad.h5"
        with h5py.File(path, "w") as h5:
            h5["samples/real"] = x                      # a group where the samples belong
        return path, None, "key 'samples': an HDF5 group"
    if fmt == "pyerrors":
        path = write_pyerrors(tmp_path / "bad.json.gz", x)
        with gzip.open(path, "rt") as f:
            content = json.load(f)
        content["obsdata"][0]["data"][0]["replica"][0]["deltas"][3] = [4]   # a value cut off
        with gzip.open(path, "wt") as f:
            json.dump(content, f)
        return path, None, "pyerrors could not read it"
    if fmt == "gvar":
        path = write_gvar(tmp_path / "bad.gvar", x)
        path.write_text(path.read_text() + "etas 1 2\n")           # a ragged last row
        return path, "etas", "key 'etas': gvar's reader: Shape mismatch"
    if fmt == "lsdensities":
        path = write_lsdensities(tmp_path / "bad.dat", x)
        lines = path.read_text().splitlines()
        path.write_text("\n".join(lines[:-1]) + "\n")             # the last line lost
        return path, None, f"key 'header': says {len(x)} measurements of {x.shape[1]} time slices"
    if fmt == "text":
        path = tmp_path / "bad.txt"
        path.write_text("1 2 3\n4 5\n")
        return path, None, "key 'line 2': 2 values; expected 3"
    path = tmp_path / "bad.npy"
    np.save(path, x + 1j)
    return path, None, "complex values"


@pytest.mark.parametrize("fmt", ["hdf5", "pyerrors", "gvar", "lsdensities", "text", "npy"])
def test_one_malformed_file_per_format(tmp_path, fmt):
    path, tag, message = malformed(tmp_path, fmt)
    with pytest.raises(InputError) as err:
        read_correlator(path, None, tag)
    assert str(path) in str(err.value) and message in str(err.value), str(err.value)


@pytest.mark.parametrize("content, message", [
    ("t", "key 't': non-integer time slices [0.5"),
    ("nan", "key 'samples': contains NaN or inf"),
    ("complex", "key 'samples': complex values"),
    ("strings", "key 'samples': not numeric"),
    ("T", "key 'T': 64.5; expected a positive integer"),
])
def test_hdf5_values_that_are_refused(tmp_path, content, message):
    """Issue 11 item 9: non-finite, complex, non-numeric values, fractional t or T, each named."""
    x = configurations(T=4)
    path = tmp_path / "u.h5"
    with h5py.File(path, "w") as h5:
        values = {"nan": np.where(x > 0.9, np.nan, x), "complex": x * (1 + 1j),
                  "strings": np.array([[b"a"] * 4] * 3)}.get(content, x)
        h5["samples"] = values
        h5["t"] = np.arange(4) + (0.5 if content == "t" else 0.0)
        h5.attrs["T"] = 64.5 if content == "T" else 64
    with pytest.raises(InputError) as err:
        read_correlator(path)
    assert str(path) in str(err.value) and message in str(err.value), str(err.value)


def test_tag_is_refused_where_a_format_has_no_tags(tmp_path):
    """Issue 11 item 10: --tag is not silently ignored for text input."""
    np.save(tmp_path / "c.npy", configurations())
    (tmp_path / "c.txt").write_text("1 2\n3 4\n")
    for name in ("c.npy", "c.txt"):
        with pytest.raises(InputError, match=rf"{name}: --tag 'x' given, but a (npy|text) file holds one"):
            read_correlator(tmp_path / name, None, "x")


def test_missing_optional_package_says_how_to_install(tmp_path, monkeypatch):
    import correlator_files

    def no_module(name):
        raise ImportError(name)
    monkeypatch.setattr(correlator_files.importlib, "import_module", no_module)
    (tmp_path / "c.json").write_text("{}")
    with pytest.raises(InputError, match=r"c\.json: reading the pyerrors format needs the package "
                       r"'pyerrors'.*pip install -r requirements-formats\.txt"):
        read_correlator(tmp_path / "c.json")


# --- the readers of make_noise_file.py's formats
# (moved here from test_noise_files.py) ---------------------------------------------------------------------------
def test_every_reader_round_trips(tmp_path):
    need("gvar")
    samples = configurations(n_cfg=5, T=8)
    text = tmp_path / "c.txt"
    text.write_text("# rows = configurations\n" + "\n".join(" ".join(f"{v:.17g}" for v in row)
                                                           for row in samples) + "\n\n")
    csv = tmp_path / "c.csv"
    csv.write_text("\n".join(",".join(f"{v:.17g}" for v in row) for row in samples))
    npy = tmp_path / "c.npy"
    np.save(npy, samples)
    h5 = tmp_path / "c.h5"
    with h5py.File(h5, "w") as f:
        f["ensemble/pion"] = samples
        f["other"] = np.zeros(3)
    gv = tmp_path / "c.gvar"
    lines = []
    for row in samples:   # interleaved tags, as gvar.dataset files often are
        lines += ["pion " + " ".join(f"{v:.17g}" for v in row), "kaon " + " ".join(["1"] * 4)]
    gv.write_text("# two correlators\n" + "\n".join(lines))
    for path, fmt, tag in [(text, None, None), (csv, None, None), (npy, None, None),
                           (h5, None, "ensemble/pion"), (gv, None, "pion"), (gv, "gvar", "pion")]:
        np.testing.assert_array_equal(read_correlator(path, fmt, tag).values, samples, err_msg=str(path))
    assert read_correlator(gv, None, "kaon").values.shape == (5, 4)


@pytest.mark.parametrize("name, content, tag, message", [
    ("ragged.txt", "1 2 3\n4 5\n", None, r"ragged\.txt, key 'line 2': 2 values; expected 3"),
    ("words.dat", "1 2\n1 x\n", None, r"words\.dat, key 'line 2'.*not a row of numbers"),
    ("empty.txt", "# nothing\n", None, r"empty\.txt: no data rows"),
    ("nan.txt", "1 2\n3 nan\n", None, r"nan\.txt: NaN or inf at configuration 1, t = 1"),
    ("two.gvar", "a 1 2\nb 3 4\n", None, r"two\.gvar, key 'tag'.*\['a', 'b'\].*--tag"),
    ("two.gvar", "a 1 2\nb 3 4\n", "c", r"two\.gvar, key 'c': no lines with this tag.*\['a', 'b'\]"),
    ("ragged.gvar", "a 1 2\na 3\n", "a", r"ragged\.gvar, key 'a': gvar's reader: Shape mismatch"),
    ("c.xyz", "1 2\n", None, r"c\.xyz: unknown extension '\.xyz'"),
])
def test_reader_bad_text_inputs(tmp_path, name, content, tag, message):
    if name.endswith(".gvar"):
        need("gvar")
    (tmp_path / name).write_text(content)
    with pytest.raises(InputError, match=message):
        read_correlator(tmp_path / name, None, tag)


def test_a_header_row_is_skipped_saying_so_never_read_as_data(tmp_path, capsys):
    """pandas writes the column indices '0,1,...,63' as a header; named columns 't0,t1,...' are
    text with a header, not gvar's 'TAG v0 ...'; a header over an index column is refused."""
    pd = need("pandas")
    x = configurations(n_cfg=200, T=64)
    pd.DataFrame(x).to_csv(tmp_path / "frame.csv", index=False)
    assert (tmp_path / "frame.csv").read_text().startswith("0,1,2,")
    named = pd.DataFrame(x, columns=[f"t{i}" for i in range(64)])
    named.to_csv(tmp_path / "named.csv", index=False)
    named.to_csv(tmp_path / "named.txt", index=False, sep=" ")
    for name in ("frame.csv", "named.csv", "named.txt"):
        assert detect_format(tmp_path / name) == "text", name
        corr = read_correlator(tmp_path / name)
        assert corr.values.shape == (200, 64), name
        np.testing.assert_array_equal(corr.values, x, err_msg=name)
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"{name}: line 1 " in err and "is a header row, not data; skipped" in err
    pd.DataFrame(x).to_csv(tmp_path / "indexed.csv")
    with pytest.raises(InputError, match=r"indexed\.csv, key 'line 1': a header of 64 names over rows of "
                                         r"65 values \(an index column\? write with index=False\)"):
        read_correlator(tmp_path / "indexed.csv")
    need("gvar")
    write_gvar(tmp_path / "g.data", x[:5])                  # a gvar data set is still gvar's
    assert detect_format(tmp_path / "g.data") == "gvar"
    np.testing.assert_array_equal(read_correlator(tmp_path / "g.data").values, x[:5])
    (tmp_path / "plain.txt").write_text("1 2\n3 4\n")       # no header: nothing skipped or said
    assert read_correlator(tmp_path / "plain.txt").values.shape == (2, 2) and capsys.readouterr().err == ""


def test_reader_bad_binary_inputs(tmp_path):
    np.save(tmp_path / "flat.npy", np.ones(5))
    with pytest.raises(InputError, match=r"flat\.npy: shape \[5\]; expected 2-D"):
        read_correlator(tmp_path / "flat.npy")
    with h5py.File(tmp_path / "s.h5", "w") as f:
        f["corr"] = np.ones((4, 3))
    with pytest.raises(InputError, match=r"s\.h5, key 'samples': missing; expected a dataset.*\['corr'\]"):
        read_correlator(tmp_path / "s.h5")
    for name in ("missing.npy", "missing.h5", "missing.txt", "missing.gvar"):
        with pytest.raises(InputError, match=rf"{name}: no such file"):
            read_correlator(tmp_path / name)


# --- fold, bin, resample --------------------------------------------------------------------------
def test_fold_bin_and_resampling_by_hand(tmp_path):
    x = configurations(n_cfg=9, T=6)
    corr = read_correlator(write_hdf5(tmp_path / "c.h5", x, T=6))
    folded = fold_correlator(corr)
    np.testing.assert_array_equal(folded.values[:, 1], (x[:, 1] + x[:, 5]) / 2)
    np.testing.assert_array_equal(folded.t, [0, 1, 2, 3])
    with pytest.raises(InputError, match=r"cannot fold: folding needs rows over t = 0\.\.63"):
        fold_correlator(corr, T=64)
    np.testing.assert_array_equal(bin_samples(np.arange(7.0)[:, None], 3)[:, 0], [1.0, 4.0])
    jk = resample(x, "jackknife", 0, None)
    np.testing.assert_allclose(jk[2], np.delete(x, 2, axis=0).mean(axis=0), rtol=1e-15)
    rng = np.random.default_rng(7)
    boot = resample(x, "bootstrap", 5, np.random.default_rng(7))
    picks = rng.integers(0, 9, size=(5, 9))
    np.testing.assert_allclose(boot[4], x[picks[4]].mean(axis=0), rtol=1e-15)



def test_chunked_bootstrap_is_bitwise_the_one_draw_of_the_whole_index_matrix():
    x = configurations(n_cfg=37, T=5)
    reference = np.random.default_rng(3)
    whole = x[reference.integers(0, 37, size=(101, 37))].mean(axis=1)        # the unchunked bootstrap
    for chunk_bytes in (1, 37 * 48 * 10, 1 << 30):        # one sample a chunk, ten, all in one
        rng = np.random.default_rng(3)
        np.testing.assert_array_equal(resample(x, "bootstrap", 101, rng, chunk_bytes), whole)
        assert rng.bit_generator.state == reference.bit_generator.state      # the same draws, no more


# --- files holding several correlators, and the names of several ------------------------------------
def several_correlators(tmp_path):
    """Three correlators [n_cfg, 8] in each format that can hold several: an HDF5 file with a group
    each (attributes on the group, else the file's), a pyerrors dictionary, a gvar data set."""
    pe = need("pyerrors")
    need("gvar")
    x = {key: configurations(seed=seed) for seed, key in enumerate(("pion", "kaon", "eta_s"))}
    h5 = tmp_path / "ensA.h5"
    with h5py.File(h5, "w") as f:
        f.attrs.update(sample_kind="configurations", T=64)
        for key, values in x.items():
            f[f"{key}/samples"] = values
            f[f"{key}/t"] = np.arange(8)
        f["kaon"].attrs["T"] = 48
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pe.input.json.dump_dict_to_json({key: pe.Corr([pe.Obs([v[:, t]], ["ens|r0"]) for t in range(8)])
                                         for key, v in x.items()}, str(tmp_path / "ensB"))
    gv = tmp_path / "ensC.gvar"
    gv.write_text("\n".join(f"{key} " + " ".join(f"{v:.17g}" for v in row)
                            for rows in zip(*[[(k, r) for r in x[k]] for k in x]) for key, row in rows))
    return x, {"hdf5": h5, "pyerrors": tmp_path / "ensB.json.gz", "gvar": gv}


def test_a_file_of_several_correlators_reads_each_as_one_would(tmp_path):
    """read_correlators gives every correlator of the file, each with the values read_correlator
    gives for its key; an HDF5 group's attributes come before the file's."""
    from correlator_files import read_correlators
    x, files = several_correlators(tmp_path)
    for fmt, path in files.items():
        found = read_correlators(path)
        assert sorted(found) == sorted(x), fmt
        for key, corr in found.items():
            np.testing.assert_allclose(corr.values, x[key], rtol=1e-15, atol=0, err_msg=f"{fmt} {key}")
            np.testing.assert_array_equal(read_correlator(path, None, key).values, corr.values)
            assert corr.kind == "configurations"
        assert list(read_correlators(path, None, "kaon")) == ["kaon"]
    hdf5 = read_correlators(files["hdf5"])
    assert hdf5["kaon"].T == 48 and hdf5["pion"].T == 64 and hdf5["pion"].key == "pion/samples"
    with pytest.raises(InputError, match=r"ensB\.json\.gz, key 'tag': a dictionary of several correlators"):
        read_correlator(files["pyerrors"])
    with pytest.raises(InputError, match=r"ensB\.json\.gz, key 'rho': no such key.*\['eta_s', 'kaon', 'pion'\]"):
        read_correlator(files["pyerrors"], None, "rho")
    # a file of one correlator is {None: it}, whatever its format
    single = write_hdf5(tmp_path / "one.h5", x["pion"])
    assert list(read_correlators(single)) == [None]
    assert list(read_correlators(write_pyerrors(tmp_path / "one.json.gz", x["pion"]))) == [None]


def test_names_of_several_correlators(tmp_path):
    """Each correlator is named after its file, with _KEY for a file holding several; --name names a
    single correlator and prefixes several; characters other than letters, digits, - and _ become
    _; two correlators of one name are refused in one line; an unreadable file keeps its error."""
    from user_correlators import correlator_names
    x, files = several_correlators(tmp_path)
    one = write_hdf5(tmp_path / "pion.p0.h5", x["pion"])
    names = [c.name for c in correlator_names([files["hdf5"], files["pyerrors"], one])]
    assert names == ["ensA_eta_s", "ensA_kaon", "ensA_pion", "ensB_pion", "ensB_kaon", "ensB_eta_s", "pion_p0"]
    assert [c.name for c in correlator_names([one], "mine")] == ["mine"]
    assert [c.name for c in correlator_names([one])] == ["pion_p0"]
    assert [c.name for c in correlator_names([files["gvar"]], "run2")] == ["run2_ensC_pion", "run2_ensC_kaon",
                                                                          "run2_ensC_eta_s"]
    assert [c.name for c in correlator_names([files["gvar"]], "k", tag="kaon")] == ["k"]
    assert [c.name for c in correlator_names([files["gvar"], files["hdf5"]], tag="kaon")] == ["ensC", "ensA"]
    missing = tmp_path / "missing.h5"
    named = correlator_names([one, missing])
    assert [c.label for c in named] == ["pion_p0", str(missing)] and named[1].name is None
    np.testing.assert_array_equal(named[0].read().values, x["pion"])
    with pytest.raises(InputError, match="missing.h5: no such file"):
        named[1].read()
    (tmp_path / "sub").mkdir()
    twin = write_hdf5(tmp_path / "sub" / "pion.p0.h5", x["kaon"])
    with pytest.raises(InputError) as err:
        correlator_names([one, twin])
    assert str(err.value) == (f"{twin}: gives the name 'pion_p0', as {one} does (names come from the file "
                              "names and the keys of a file holding several): rename one")
    with pytest.raises(InputError, match="gives the name 'O3'"):
        correlator_names([write_hdf5(tmp_path / "O3.h5", x["pion"])])
