"""Noise input files (method §4, §10): samples -> mean and covariance of the mean, the readers of
user sample files, the stand-in file, the loader's bad inputs, and the HPQCD η_s demo."""
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import need

import make_noise_file
from config import load_config
from correlator_files import bin_samples, fold_periodic
from io_utils import InputError
from noise_files import load_noise_file, mean_and_cov_of_mean, noise_from_samples, write_noise_file

REPO = Path(__file__).resolve().parents[1]
STANDIN = REPO / "data" / "standin_baryon_T64.h5"


@pytest.fixture
def cfg(tmp_path):
    return load_config("reference", [], tmp_path)


def correlated_samples(n_cfg=90, T=64, seed=1):
    """Positive, periodic-ish, t-correlated per-configuration correlators [n_cfg, T]."""
    rng = np.random.default_rng(seed)
    t = np.arange(T)
    clean = np.exp(-0.4 * t) + np.exp(-0.4 * (T - t))
    walk = np.cumsum(rng.standard_normal((n_cfg, T)), axis=1) / np.sqrt(T)
    return clean * (1 + 0.05 * walk + 0.02 * rng.standard_normal((n_cfg, 1)))


def leaves_nothing(directory: Path, name: str):
    return not (directory / name).exists() and not list(directory.glob(".*.tmp"))


# --- samples -> mean and covariance of the mean ------------------------------------------------
def test_mean_and_cov_of_mean_against_numpy_with_binning_and_fold_by_hand():
    samples = correlated_samples(n_cfg=163)
    T, b = samples.shape[1], 4
    folded = np.array([[(row[t] + row[(T - t) % T]) / 2 for t in range(T // 2 + 1)] for row in samples])
    picked = folded[:, 1:33]
    bins = np.array([picked[k * b:(k + 1) * b].mean(axis=0) for k in range(len(samples) // b)])
    t, mean, cov, n_bins = noise_from_samples(samples, 1, 32, bin_size=b, fold=True)
    assert n_bins == 40 == len(bins)
    np.testing.assert_array_equal(t, np.arange(1, 33))
    np.testing.assert_allclose(mean, bins.mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(cov, np.cov(bins, rowvar=False) / n_bins, rtol=1e-12,
                               atol=1e-15 * np.abs(cov).max())
    np.testing.assert_array_equal(cov, cov.T)


def test_fold_and_bin_pieces():
    samples = np.arange(2 * 6, dtype=float).reshape(2, 6) ** 2
    np.testing.assert_array_equal(fold_periodic(samples)[0], [0, (1 + 25) / 2, (4 + 16) / 2, 9])
    x = np.arange(7.0)[:, None]
    np.testing.assert_array_equal(bin_samples(x, 3)[:, 0], [1.0, 4.0])   # the 7th is dropped
    mean, cov = mean_and_cov_of_mean(np.array([[1.0], [3.0]]))
    assert mean[0] == 2 and cov[0, 0] == pytest.approx(2.0 / 2)        # S = 2, N = 2


def test_too_few_bins_and_bad_slices_are_input_errors():
    samples = correlated_samples(n_cfg=40)
    with pytest.raises(InputError, match=r"f\.npy, key 'x'.*10 bins of 4, for 32 time slices"):
        noise_from_samples(samples, 1, 32, bin_size=4, path="f.npy", key="x")
    with pytest.raises(InputError, match=r"f\.npy.*1\.\.40 requested; the folded samples have t = 0\.\.32"):
        noise_from_samples(samples, 1, 40, fold=True, path="f.npy")
    with pytest.raises(InputError, match="bin size 0"):
        noise_from_samples(samples, 1, 3, bin_size=0, path="f.npy")


# --- the writer and the command-line tool ------------------------------------------------------------
def test_cli_converts_npy_with_binning_and_the_loader_accepts_it(tmp_path, cfg, capsys):
    samples = correlated_samples(n_cfg=90)
    np.save(tmp_path / "mine.npy", samples)
    rc = make_noise_file.main([str(tmp_path / "mine.npy"), "--bin", "2", "--root", str(tmp_path)])
    assert rc == 0
    out = tmp_path / "data" / "mine_noise.h5"
    assert "90 configurations -> 45 bins of 2" in capsys.readouterr().out
    noise = load_noise_file(out, cfg)
    _, mean, cov, _ = noise_from_samples(samples, 1, 32, bin_size=2)
    np.testing.assert_array_equal(noise.mean, mean)
    np.testing.assert_array_equal(noise.cov, cov)
    with h5py.File(out) as f:
        assert f.attrs["n_samples"] == 45 and f.attrs["n_configurations"] == 90
        assert f.attrs["source"] == "mine.npy" and "config" in f.attrs and "code_version" in f.attrs


def test_failing_conversion_leaves_no_output(tmp_path, cfg, capsys):
    np.save(tmp_path / "few.npy", correlated_samples(n_cfg=20))        # 20 configurations < 32 slices
    out = tmp_path / "out"
    rc = make_noise_file.main([str(tmp_path / "few.npy"), "-o", str(out / "x.h5")])
    assert rc == 2 and "few.npy" in capsys.readouterr().err
    assert not out.exists() or leaves_nothing(out, "x.h5")
    # the writer itself: the loader's check fails before the file gets its name
    bad_cov = -np.eye(32)
    with pytest.raises(InputError, match=r"x\.h5, key 'cov': not positive definite"):
        write_noise_file(out / "x.h5", np.ones(32), bad_cov, np.arange(1, 33), "test", 10, cfg)
    assert leaves_nothing(out, "x.h5")
    # slices that do not cover the preset's inputs
    with pytest.raises(InputError, match=r"x\.h5, key 't'.*lack the preset's input slices"):
        write_noise_file(out / "x.h5", np.ones(5), np.eye(5), np.arange(1, 6), "test", 10, cfg)
    assert leaves_nothing(out, "x.h5")


def test_cli_exit_status_from_a_shell(tmp_path):
    run = subprocess.run([sys.executable, str(REPO / "make_noise_file.py"), str(tmp_path / "no.npy"),
                          "--root", str(tmp_path)], capture_output=True, text=True)
    assert run.returncode == 2 and "no.npy: no such file" in run.stderr
    assert not (tmp_path / "data").exists()


# --- the stand-in file -----------------------------------------------------------------------------
def test_standin_is_reproduced_bit_for_bit(tmp_path):
    out = tmp_path / "standin.h5"
    subprocess.run([sys.executable, str(REPO / "data" / "make_standin_noise.py"), "-o", str(out)],
                   check=True, capture_output=True)
    with h5py.File(STANDIN) as committed, h5py.File(out) as fresh:
        for key in ("mean", "cov", "t"):
            np.testing.assert_array_equal(fresh[key][()], committed[key][()], err_msg=key)
        assert fresh.attrs["n_samples"] == committed.attrs["n_samples"] == 500
        assert fresh.attrs["source"] == committed.attrs["source"]


def test_standin_is_labelled_and_has_baryon_like_errors(cfg):
    noise = load_noise_file(STANDIN, cfg)
    assert noise.source.startswith("STAND-IN") and "not real lattice data" in noise.source
    rel = np.sqrt(np.diag(noise.cov)) / noise.mean
    assert 1e-3 < rel[0] < 1e-2 and 0.1 < rel[-1] < 1.0
    # Parisi-Lepage: from t = 10 on the relative error grows like e^{(M - 3/2 m_pi) t} = e^{0.2 t}
    slope = np.polyfit(noise.t[9:], np.log(rel[9:]), 1)[0]
    assert 0.15 < slope < 0.25
    d = np.sqrt(np.diag(noise.cov))
    assert np.all(np.diag(noise.cov / np.outer(d, d), 1) > 0.8)   # neighbouring slices correlated


# --- the loader's bad inputs (noise_files.load_noise_file) --------------------------------------
def write_raw(path, **datasets):
    with h5py.File(path, "w") as f:
        for key, value in datasets.items():
            f[key] = value
    return path


def good_arrays():
    t = np.arange(1, 33, dtype=float)
    mean = np.exp(-0.5 * t)
    sd = 1e-3 * mean * np.exp(0.1 * t)
    corr = 0.9 ** np.abs(t[:, None] - t[None, :])
    return mean, corr * np.outer(sd, sd), t


def test_loader_accepts_octet_group_and_extra_slices(tmp_path, cfg):
    mean, cov, t = good_arrays()
    with h5py.File(tmp_path / "octet.h5", "w") as f:
        f["octet(0)/mean"], f["octet(0)/cov"] = mean, cov
    noise = load_noise_file(tmp_path / "octet.h5", cfg)
    np.testing.assert_array_equal(noise.mean, mean)
    np.testing.assert_allclose(noise.chol @ noise.chol.T, cov, rtol=1e-12, atol=1e-20)
    # a file over t = 0..40 gives the preset's slices 1..32
    t_wide = np.arange(41.0)
    mean_w, cov_w = np.exp(-0.5 * t_wide), np.diag(np.exp(-t_wide) * 1e-6)
    noise = load_noise_file(write_raw(tmp_path / "wide.h5", mean=mean_w, cov=cov_w, t=t_wide), cfg)
    np.testing.assert_array_equal(noise.mean, mean_w[1:33])


def test_loader_samples_layout_agrees_with_noise_files(tmp_path, cfg):
    """The loader's own samples -> (mean, cov of the mean) matches noise_files' (one formula)."""
    samples = correlated_samples(n_cfg=80)
    noise = load_noise_file(write_raw(tmp_path / "s.h5", samples=samples, t=np.arange(64.0)), cfg)
    _, mean, cov, n = noise_from_samples(samples, 1, 32)
    np.testing.assert_allclose(noise.mean, mean, rtol=1e-14)
    np.testing.assert_allclose(noise.cov, cov, rtol=1e-12, atol=1e-15 * np.abs(cov).max())


@pytest.mark.parametrize("case, key, message", [
    ("missing file", None, "no such file"),
    ("missing cov", "cov", "missing"),
    ("cov shape", "cov", "shape [32, 31], expected [32, 32]"),
    ("short mean, no t", "mean", "length 20 and no 't' dataset"),
    ("t lacks slices", "t", "lack the preset's input slices"),
    ("not symmetric", "cov", "not symmetric"),
    ("not positive definite", "cov", "not positive definite"),
    ("NaN in mean", "mean", "NaN or inf"),
    ("inf in cov", "cov", "NaN or inf"),
    ("octet without cov", "cov", "missing"),
])
def test_loader_bad_inputs_name_file_and_key(tmp_path, cfg, case, key, message):
    mean, cov, t = good_arrays()
    path = tmp_path / "noise.h5"
    if case == "missing cov":
        write_raw(path, mean=mean, t=t)
    elif case == "cov shape":
        write_raw(path, mean=mean, cov=cov[:, :31], t=t)
    elif case == "short mean, no t":
        write_raw(path, mean=mean[:20], cov=cov[:20, :20])
    elif case == "t lacks slices":
        write_raw(path, mean=mean, cov=cov, t=t + 5)
    elif case == "not symmetric":
        bad = cov.copy()
        bad[0, 5] *= 1.5
        write_raw(path, mean=mean, cov=bad, t=t)
    elif case == "not positive definite":
        w, v = np.linalg.eigh(cov)
        w[0] = -w[-1] * 1e-3
        write_raw(path, mean=mean, cov=(v * w) @ v.T, t=t)
    elif case == "NaN in mean":
        write_raw(path, mean=np.where(t == 7, np.nan, mean), cov=cov, t=t)
    elif case == "inf in cov":
        bad = cov.copy()
        bad[3, 3] = np.inf
        write_raw(path, mean=mean, cov=bad, t=t)
    elif case == "octet without cov":
        with h5py.File(path, "w") as f:
            f["octet(0)/mean"] = mean
    before = sorted(tmp_path.iterdir())
    with pytest.raises(InputError) as err:
        load_noise_file(path, cfg)
    text = str(err.value)
    assert str(path) in text and message in text, text
    if key:
        assert f"key '{key}'" in text
    assert sorted(tmp_path.iterdir()) == before          # the loader writes nothing


# --- real public data: HPQCD's η_s correlator (fetched at run time, GPL, never committed) -------------
@pytest.mark.network
def test_hpqcd_etas_end_to_end(tmp_path, cfg):
    need("gvar")                       # make_noise_file reads the data set with gvar's reader
    out = tmp_path / "etas.h5"
    run = subprocess.run(["bash", str(REPO / "data" / "fetch_hpqcd_etas.sh"), str(out), "--bin", "5"],
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "SPECTRAL_PYTHON": sys.executable})
    if run.returncode == 3:
        pytest.skip("corrfitter 8.2 sdist could not be downloaded: " + run.stderr.strip()[-200:])
    assert run.returncode == 0, run.stderr
    noise = load_noise_file(out, cfg)
    with h5py.File(out) as f:
        assert f.attrs["n_samples"] == 225 // 5 and f.attrs["n_configurations"] == 225
        assert f.attrs["folded"] == 1 and "HPQCD" in f.attrs["source"]
    assert np.all(noise.mean > 0)
    rel = np.sqrt(np.diag(noise.cov)) / noise.mean
    assert 1e-5 < rel[0] < 1e-2 and rel[-1] < 0.1        # a precise meson correlator
    assert "225 configurations -> 45 bins of 5, folded" in run.stdout


def test_hpqcd_fetch_reports_an_impossible_download_with_status_3(tmp_path):
    """... with the interpreter it is given (SPECTRAL_PYTHON): a python or python3 first on PATH
    (here one that only records that it ran) is never started."""
    shims = tmp_path / "bin"
    shims.mkdir()
    for name in ("python", "python3"):
        (shims / name).write_text(f"#!/bin/sh\necho \"$0\" >> {tmp_path / 'started'}\nexit 1\n")
        (shims / name).chmod(0o755)
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(tmp_path), "SPECTRAL_PYTHON": sys.executable,
           "PATH": f"{shims}:{os.environ['PATH']}"}
    run = subprocess.run(["bash", str(REPO / "data" / "fetch_hpqcd_etas.sh"), str(tmp_path / "e.h5")],
                         capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 3 and "could not download" in run.stderr
    assert not (tmp_path / "e.h5").exists()
    assert not (tmp_path / "started").exists(), "started python by name: " + (tmp_path / "started").read_text()


# --- issue 11 item 10: the tool's messages name the input and the slice; -o DIR; empty noise_file --
@pytest.mark.parametrize("damage, message", [
    ("zero column", "zero variance at t = 5: every bin has the same value there"),
    ("identical rows", "zero variance at t = 1..32"),
    ("duplicated column", "the covariance of the mean is singular at t = 8: "
                          "there the bins are a linear combination of t = 1..7"),
    ("overflowing column", "the mean or its covariance overflows float64 at t = 10 "),     # issue 22 item 7
])
def test_covariance_errors_name_the_input_and_the_slice(tmp_path, damage, message, capsys):
    samples = correlated_samples(n_cfg=90)
    if damage == "zero column":
        samples[:, 5] = 1.0
    elif damage == "identical rows":
        samples[:] = samples[0]
    elif damage == "overflowing column":
        samples[:, 10] *= 1e160
    else:
        samples[:, 8] = samples[:, 7]
    np.save(tmp_path / "bad.npy", samples)
    rc = make_noise_file.main([str(tmp_path / "bad.npy"), "-o", str(tmp_path / "out.h5")])
    err = capsys.readouterr().err
    assert rc == 2 and f"{tmp_path / 'bad.npy'}: {message}" in err, err
    assert "out.h5" not in err and leaves_nothing(tmp_path, "out.h5")


def test_output_folder_tag_and_slice_range(tmp_path, cfg, capsys):
    np.save(tmp_path / "mine.npy", correlated_samples(n_cfg=90))
    (tmp_path / "out").mkdir()
    assert make_noise_file.main([str(tmp_path / "mine.npy"), "-o", str(tmp_path / "out")]) == 0
    load_noise_file(tmp_path / "out" / "mine_noise.h5", cfg)       # written there, and valid
    assert make_noise_file.main([str(tmp_path / "mine.npy"), "-o", str(tmp_path / "new") + "/"]) == 0
    assert (tmp_path / "new" / "mine_noise.h5").is_file()
    capsys.readouterr()
    assert make_noise_file.main([str(tmp_path / "mine.npy"), "--tag", "x", "--root", str(tmp_path)]) == 2
    assert "--tag 'x' given, but a npy file holds one correlator" in capsys.readouterr().err
    assert make_noise_file.main([str(tmp_path / "mine.npy"), "--t-range", "1-20", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'mine.npy'}, key '--t-range'" in err and "lack the preset's input slices" in err
    assert not (tmp_path / "data").exists()


def test_empty_noise_file_setting_is_a_clear_error(tmp_path, capsys):
    np.save(tmp_path / "mine.npy", correlated_samples(n_cfg=90))
    assert make_noise_file.main([str(tmp_path / "mine.npy"), "--set", "noise_file=", "--root", str(tmp_path)]) == 2
    assert "noise_file='': expected the path of a noise file" in capsys.readouterr().err
