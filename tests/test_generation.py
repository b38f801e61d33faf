"""Stage 1 files (method §3-5, §10): prefixes, determinism, regeneration, standardisation, bad input."""
import json
import subprocess
import sys

import h5py
import numpy as np
import pytest
from conftest import REPO

import sigma_model_utils as smu
import training_sets
from config import load_config
from noise_files import load_noise_file
from tasks import generation_tasks
from training_sets import target_key


def read_all(path):
    with h5py.File(path, "r") as h5:
        return {key: h5[key][()] for key in h5}, dict(h5.attrs)


def run_generator(*args):
    return subprocess.run([sys.executable, str(REPO / "generate_full_dataset_sigma.py"), *args],
                          capture_output=True, text=True, cwd=REPO)


@pytest.fixture
def tiny_files(tiny_cfg):
    training_sets.generate_training_files(tiny_cfg, 16, workers=2, progress=False, log=lambda m: None)
    return {n: tiny_cfg.training_file(16, n) for n in tiny_cfg["nrho_list"]}


def test_smaller_file_is_the_prefix_of_the_larger(tiny_cfg, tiny_files):
    small, large = (read_all(tiny_files[n])[0] for n in tiny_cfg["nrho_list"])
    n = len(small["E0"])
    keys = ["E0", "coefficients", "clean_correlators", "noise_scale"] + [target_key(s) for s in tiny_cfg["sigmas_gev"]]
    for key in keys:
        np.testing.assert_array_equal(small[key], large[key][:n], err_msg=key)
    # the noisy copies are the same stream; only the standardisation is per file (method §5)
    raw_small = small["standardized_noisy_correlators"] * small["gamma_vector"] + small["mu_vector"]
    raw_large = large["standardized_noisy_correlators"][:n] * large["gamma_vector"] + large["mu_vector"]
    np.testing.assert_allclose(raw_small, raw_large, rtol=0, atol=1e-6 * np.abs(raw_large).max())
    assert not np.allclose(small["mu_vector"], large["mu_vector"])


def test_file_contents_follow_spec(tiny_cfg, tiny_files):
    data, attrs = read_all(tiny_files[400])
    assert data["standardized_noisy_correlators"].shape == (400, tiny_cfg["n_noise"], tiny_cfg.n_t)
    assert data["standardized_noisy_correlators"].dtype == np.float32
    assert data["clean_correlators"].dtype == np.float64
    np.testing.assert_array_equal(data["t"], tiny_cfg.t)
    np.testing.assert_allclose(data["energies"], np.linspace(0.10566, 24 * 0.10566, 47))
    # μ, γ: mean and std of this file's clean correlators
    np.testing.assert_allclose(data["mu_vector"], data["clean_correlators"].mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(data["gamma_vector"], data["clean_correlators"].std(axis=0), rtol=1e-12)
    # every sample can be regenerated from its stored (E0, c)
    clean, targets = smu.correlators_and_targets(data["E0"][:50], data["coefficients"][:50], tiny_cfg)
    np.testing.assert_allclose(data["clean_correlators"][:50], clean, rtol=1e-13)
    for s in tiny_cfg["sigmas_gev"]:
        np.testing.assert_allclose(data[target_key(s)][:50], targets[s], rtol=1e-13, atol=1e-16)
    noise = load_noise_file(tiny_cfg.input_path(tiny_cfg["noise_file"]), tiny_cfg)
    np.testing.assert_allclose(data["noise_scale"], data["clean_correlators"][:, 0] / noise.mean[0])
    np.testing.assert_array_equal(data["noise_cov"], noise.cov)
    for key in ("config", "kernel", "T", "seed", "code_version", "package_versions"):
        assert key in attrs, key
    assert attrs["kernel"] == "rratio" and attrs["T"] == 64


def test_same_seed_gives_identical_files_independent_of_workers(tiny_cfg, tmp_path):
    other = load_config("tiny", tiny_cfg.overrides, tmp_path / "again")
    training_sets.generate_training_files(tiny_cfg, 32, workers=2, progress=False, log=lambda m: None)
    training_sets.generate_training_files(other, 32, workers=1, progress=False, log=lambda m: None)
    a, _ = read_all(tiny_cfg.training_file(32, 400))
    b, _ = read_all(other.training_file(32, 400))
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    reseeded = load_config("tiny", tiny_cfg.overrides + ["seed=1"], tmp_path / "reseeded")
    training_sets.generate_training_files(reseeded, 32, workers=1, progress=False, log=lambda m: None)
    c, _ = read_all(reseeded.training_file(32, 400))
    assert not np.array_equal(a["E0"], c["E0"])


def test_complete_files_are_kept_and_changed_parameters_regenerate(tiny_cfg, tiny_files):
    before = {n: p.stat().st_mtime_ns for n, p in tiny_files.items()}
    messages = []
    training_sets.generate_training_files(tiny_cfg, 16, progress=False, log=messages.append)
    assert all(m.startswith("kept") for m in messages) and len(messages) == 2
    assert {n: p.stat().st_mtime_ns for n, p in tiny_files.items()} == before
    changed = load_config("tiny", tiny_cfg.overrides + ["n_noise=3"], tiny_cfg.root)
    training_sets.generate_training_files(changed, 16, progress=False, log=lambda m: None)
    with h5py.File(tiny_files[400]) as h5:
        assert h5["standardized_noisy_correlators"].shape[1] == 3


def test_interrupted_generation_leaves_nothing_and_resumes(tiny_cfg, monkeypatch):
    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed midway")
    monkeypatch.setattr(training_sets, "noisy_block", killed)
    with pytest.raises(KeyboardInterrupt):
        training_sets.generate_training_files(tiny_cfg, 16, workers=1, progress=False, log=lambda m: None)
    directory = tiny_cfg.training_file(16, 400).parent
    assert list(directory.iterdir()) == []
    monkeypatch.undo()
    training_sets.generate_training_files(tiny_cfg, 16, workers=1, progress=False, log=lambda m: None)
    assert sorted(p.name for p in directory.iterdir()) == ["training_data_Nb16_Nrho200.hdf5",
                                                          "training_data_Nb16_Nrho400.hdf5"]


def write_noise(path, mean, cov, t=None, group=None):
    with h5py.File(path, "w") as h5:
        g = h5.create_group(group) if group else h5
        g["mean"], g["cov"] = mean, cov
        if t is not None:
            g["t"] = t


GOOD_T = np.arange(1, 33.0)
GOOD_MEAN = np.exp(-0.5 * GOOD_T)
GOOD_COV = np.diag((0.01 * GOOD_MEAN) ** 2)


@pytest.mark.parametrize("case, key, expected", [
    ("missing", None, "no such file"),
    ("no_cov", "cov", "missing"),
    ("short", "t", "lack the preset's input slices"),
    ("asymmetric", "cov", "not symmetric"),
    ("indefinite", "cov", "not positive definite"),
    ("nan", "mean", "NaN or inf"),
    ("no_t_wrong_length", "mean", "expected 32 values"),
])
def test_bad_noise_file_gives_one_clear_message_and_no_output(tmp_path, case, key, expected):
    path = tmp_path / "data" / "noise.h5"
    path.parent.mkdir()
    cov = GOOD_COV.copy()
    if case == "no_cov":
        with h5py.File(path, "w") as h5:
            h5["mean"], h5["t"] = GOOD_MEAN, GOOD_T
    elif case == "short":
        write_noise(path, GOOD_MEAN[:16], cov[:16, :16], GOOD_T[:16])
    elif case == "asymmetric":
        cov[0, 1] = 1e-3 * cov[0, 0]
        write_noise(path, GOOD_MEAN, cov, GOOD_T)
    elif case == "indefinite":
        cov[5, 5] = -cov[5, 5]
        write_noise(path, GOOD_MEAN, cov, GOOD_T)
    elif case == "nan":
        mean = GOOD_MEAN.copy()
        mean[3] = np.nan
        write_noise(path, mean, cov, GOOD_T)
    elif case == "no_t_wrong_length":
        write_noise(path, GOOD_MEAN[:20], cov[:20, :20], group="octet(0)")
    result = run_generator("--preset", "tiny", "--nb", "16", "--root", str(tmp_path),
                           "--set", "noise_file=data/noise.h5")
    assert result.returncode == 2
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert str(path) in message and expected in message
    if key:
        assert f"key '{key}'" in message
    assert not (tmp_path / "training_datasets_T32").exists() or not any((tmp_path / "training_datasets_T32").iterdir())


def test_reference_octet_layout_is_accepted(tmp_path):
    path = tmp_path / "octet.h5"
    write_noise(path, GOOD_MEAN, GOOD_COV, group="octet(0)")
    cfg = load_config("tiny", [f"noise_file={path}"], tmp_path)
    noise = load_noise_file(path, cfg)
    np.testing.assert_array_equal(noise.mean, GOOD_MEAN)


def test_task_id_maps_to_the_presets_nb(tmp_path):
    ok = run_generator("--preset", "tiny", "--task-id", "1", "--root", str(tmp_path))
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "training_datasets_T32" / "training_data_Nb32_Nrho400.hdf5").is_file()
    n = len(generation_tasks(load_config("tiny")))         # the Chebyshev N_b, then the mixture's
    bad = run_generator("--preset", "tiny", "--task-id", str(n), "--root", str(tmp_path))
    assert bad.returncode == 2 and f"{n} generation tasks" in bad.stderr


def test_prior_space_file_is_its_own_prefix_stream_with_its_space_recorded(tiny_cfg, tmp_path):
    """The second space (method §8 extension): the layout of method §10 under its own name, the space
    and its parameters in ``functional_space``, samples regenerable from (E0, c) in that space,
    a smaller N_ρ the prefix of a larger one, and another stream than the Chebyshev file."""
    overrides = tiny_cfg.overrides + ["prior_systematic=true"]
    cfg = load_config("tiny", overrides, tmp_path / "a")
    small_cfg = load_config("tiny", overrides + ["ensembles.Nmax.nrho=200"], tmp_path / "b")
    for c in (cfg, small_cfg):
        training_sets.generate_training_files(c, 32, workers=1, progress=False, log=lambda m: None,
                                              space="prior")
        training_sets.generate_training_files(c, 32, workers=1, progress=False, log=lambda m: None)
    path = cfg.training_file(32, 400, "prior")
    assert path.name == "training_data_prior_Nb32_Nrho400.hdf5"
    assert sorted(p.name for p in path.parent.glob("training_data_prior_*")) == [path.name]
    large, attrs = read_all(path)
    small, _ = read_all(small_cfg.training_file(32, 200, "prior"))
    chebyshev_file, chebyshev_attrs = read_all(cfg.training_file(32, 400))
    space = json.loads(attrs["functional_space"])
    assert space == dict(cfg["prior_space"], space="prior")
    assert json.loads(chebyshev_attrs["functional_space"])["x_scale"] == 1.0
    assert set(large) == set(chebyshev_file)
    for key in ["E0", "coefficients", "clean_correlators", "noise_scale"] + [target_key(s) for s in cfg["sigmas_gev"]]:
        np.testing.assert_array_equal(small[key], large[key][:200], err_msg=key)
    assert not np.allclose(large["E0"], chebyshev_file["E0"])
    clean, targets = smu.correlators_and_targets(large["E0"][:20], large["coefficients"][:20], cfg, space="prior")
    np.testing.assert_allclose(large["clean_correlators"][:20], clean, rtol=1e-13)
    for s in cfg["sigmas_gev"]:
        np.testing.assert_allclose(large[target_key(s)][:20], targets[s], rtol=1e-13, atol=1e-16)
    ok = run_generator("--preset", "tiny", "--set", "prior_systematic=true", "--task-id", "2",
                       "--root", str(tmp_path / "c"))
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "c" / "training_datasets_T32" / path.name).is_file()
