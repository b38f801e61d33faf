"""Prediction and analysis end to end on a tiny audience trained here (generate -> train ->
predict -> analyse, method §8-10), the user-data path (bootstrap, jackknife, mean + cov), missing
ensembles and checkpoints, and bad inputs."""
import json
import shutil

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

import analysis
import analyze_delta_tanh_mock
import analyze_O3_mock_sigma
import analyze_user_data
import budget as bud
import calibrate_sigma
import generate_delta_mock
import hpc_train_sigma
import predict_on_delta_tanh
import predict_on_O3_mock_sigma
import predict_on_user_data
import run_pipeline
from calibration import result_centres
from calibration_files import read_calibration
from config import load_config
from io_utils import InputError
from mocks import make_mock
from noise_files import load_noise_file
from prediction import mock_inputs
from result_files import budget_columns
from tasks import generation_tasks, training_tasks
from training import train_replicas
from training_sets import generate_training_files
from user_correlators import read_user_samples

TINY = ["max_epochs=1"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny networks gain nothing from threads, and lose a lot when the cores are shared."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, request):
    """The tiny preset's whole audience (4 ensembles x 2 replicas x 2 σ) and its interval networks,
    one epoch each, and their calibration."""
    root = tmp_path_factory.mktemp("audience")
    noise = str(request.config.rootpath / "data" / "standin_baryon_T64.h5")
    cfg = load_config("tiny", TINY + [f"noise_file={noise}"], root)
    for space, nb in generation_tasks(cfg):
        generate_training_files(cfg, nb, workers=1, progress=False, log=lambda *a: None, space=space)
    groups = {}
    for ens, r, s in training_tasks(cfg):
        groups.setdefault((ens, s), []).append(r)
    for (ens, s), replicas in groups.items():
        train_replicas(cfg, ens, s, replicas, device="cpu", log=lambda *a: None)
    assert calibrate_sigma.main(args_of(cfg)) == 0
    return cfg


def args_of(cfg):
    return ["--preset", "tiny", "--root", str(cfg.root)] + [a for o in cfg.overrides for a in ("--set", o)]


def copy_audience(cfg, tmp_path):
    """A private copy of the trained networks, to damage."""
    for directory in cfg.root.glob("trained_models_sigma*"):
        shutil.copytree(directory, tmp_path / directory.name)
    return load_config("tiny", cfg.overrides, tmp_path)


def test_mock_pipeline_end_to_end(trained, capsys):
    cfg = trained
    n_boot, n_r, n_e = cfg["n_boot"], cfg["n_replicas"], cfg["n_energies"]
    for mock, predict, analyze in (("delta_tanh", predict_on_delta_tanh, analyze_delta_tanh_mock),
                                   ("O3", predict_on_O3_mock_sigma, analyze_O3_mock_sigma)):
        assert predict.main(args_of(cfg)) == 0
        assert analyze.main(args_of(cfg)) == 0
        truth = make_mock(mock, cfg).truth
        samples = None
        for sigma in cfg["sigmas_gev"]:
            for ens in cfg["ensembles"]:
                with h5py.File(cfg.prediction_file(mock, ens, sigma), "r") as h5:
                    assert h5["predictions"].shape == (n_boot, n_r, n_e)
                    assert h5["input_samples"].shape == (n_boot, cfg.n_t)
                    np.testing.assert_array_equal(h5["energy_grid_smeared"][()], cfg.energies)
                    np.testing.assert_array_equal(h5["true_smeared_rho"][()], truth[sigma])
                    assert h5.attrs["sample_kind"] == "bootstrap" and h5.attrs["ensemble"] == ens
                    assert h5.attrs["closure_level"] == 1          # a measured mock (method §8)
                    assert np.any(h5["measured_correlator"][()] != h5["clean_correlator"][()])
                    assert "code_version" in h5.attrs and json.loads(h5.attrs["missing_checkpoints"]) == []
                    # the same samples for every ensemble and σ (method §8)
                    if samples is None:
                        samples = h5["input_samples"][()]
                    np.testing.assert_array_equal(h5["input_samples"][()], samples)
            with h5py.File(cfg.prediction_file(mock, "Nmax_interval", sigma), "r") as h5:
                assert h5["predictions"].shape == (n_boot, n_r, 3 * n_e)      # q_lo, q_50, q_hi
                np.testing.assert_array_equal(h5["input_samples"][()], samples)
            table = pd.read_csv(cfg.results_file(mock, sigma, "budget.csv"))
            assert list(table.columns) == ["E", "central", "stat", "rep", "sys_b", "sys_rho", "sys_n",
                                           "total", "central_calibrated", "post", "total_calibrated",
                                           "central_calibrated_audience", "post_audience",
                                           "total_calibrated_audience", "central_calibrated_paper", "post_paper",
                                           "total_calibrated_paper", "total_scaled", "truth", "closure_level"]
            # the calibrated result as calibration.py defines it, from the calibration file and the
            # interval networks' predictions
            cal = read_calibration(cfg, sigma)
            with h5py.File(cfg.prediction_file(mock, "Nmax_interval", sigma), "r") as h5:
                q = h5["predictions"][()].astype(np.float64)
            width = (np.abs(q[..., 2 * n_e:] - q[..., :n_e]) / 2).mean(axis=(0, 1))
            np.testing.assert_allclose(table["central_calibrated"], q[..., n_e:2 * n_e].mean(axis=(0, 1)), rtol=1e-6)
            np.testing.assert_allclose(table["post"], cal.factors["median"].Q[0] * width, rtol=1e-6)
            np.testing.assert_allclose(table["total_calibrated"], table["post"], rtol=1e-12)
            np.testing.assert_array_equal(table["central_calibrated_paper"], table["central"])
            np.testing.assert_allclose(table["post_paper"], cal.factors["paper"].Q[0] * width, rtol=1e-6)
            # the audience centre: ρ̄_Nmax with its σ_tot scaled; N_cal = 16 holds one bin, whose factor is S
            assert cal.n_bins == 1
            np.testing.assert_array_equal(table["central_calibrated_audience"], table["central"])
            np.testing.assert_allclose(table["total_calibrated_audience"], table["total_scaled"], rtol=1e-12)
            np.testing.assert_allclose(table["post_audience"], table["total_calibrated_audience"], rtol=1e-12)
            np.testing.assert_allclose(table["total_calibrated_paper"] ** 2, table["post_paper"] ** 2
                                       + (table[["sys_b", "sys_rho", "sys_n"]] ** 2).sum(axis=1), rtol=1e-8)
            np.testing.assert_allclose(table["total_scaled"], cal.S * table["total"], rtol=1e-8)
            with h5py.File(cfg.results_file(mock, sigma, "budget.hdf5"), "r") as h5:
                cov = h5["covariance/total_calibrated"][()]
                np.testing.assert_allclose(np.sqrt(np.diag(cov)), table["total_calibrated"], rtol=1e-8)
                cov = h5["covariance/total_calibrated_paper"][()]
                np.testing.assert_allclose(np.sqrt(np.diag(cov)), table["total_calibrated_paper"], rtol=1e-8)
                assert json.loads(h5.attrs["calibration"])["centre"] == "median"
            assert np.all(table["closure_level"] == 1)
            assert len(table) == n_e and np.all(np.isfinite(table.to_numpy()))
            np.testing.assert_allclose(table["total"] ** 2, (table[["stat", "rep", "sys_b", "sys_rho", "sys_n"]] ** 2)
                                       .sum(axis=1), rtol=1e-8)
            with h5py.File(cfg.results_file(mock, sigma, "budget.hdf5"), "r") as h5:
                np.testing.assert_allclose(h5["total"][()], table["total"], rtol=1e-9)
                assert h5.attrs["closure_level"] == 1
                assert set(h5["ensembles"]) == set(cfg["ensembles"])
            for plot in ("result", "ensembles", "budget", "pulls"):
                png = cfg.results_file(mock, sigma, f"{plot}.png")
                assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
        out = capsys.readouterr().out
        assert f"Summary for {mock}:" in out
        assert out.count("paper (σ_tot): mean |pull| = ") == len(cfg["sigmas_gev"])
        assert out.count("calibrated (median centre): mean |pull| = ") == len(cfg["sigmas_gev"])


def test_prediction_files_record_the_replicas_noise_mode(trained, tmp_path):
    cfg = copy_audience(trained, tmp_path)
    assert predict_on_O3_mock_sigma.main(args_of(cfg)) == 0
    for sigma in cfg["sigmas_gev"]:
        for ens in cfg["ensembles"]:
            with h5py.File(cfg.prediction_file("O3", ens, sigma), "r") as h5:
                assert h5.attrs["noise"] == "replica" == cfg["noise"]


def test_prior_systematic_end_to_end(trained, tmp_path, capsys):
    """method §8 extension on the tiny preset with prior_systematic=true: Nref_prior is generated on
    the second space, trained, predicted and analysed; the budget files gain sys_prior and
    total_with_prior (the paper's total unchanged), the summary reports both."""
    cfg = load_config("tiny", copy_audience(trained, tmp_path).overrides + ["prior_systematic=true"], tmp_path)
    shutil.copytree(trained.root / "calibration", tmp_path / "calibration")   # Nref_prior is not calibrated
    generate_training_files(cfg, cfg["ensembles"]["Nmax"]["nb"], workers=1, progress=False,
                            log=lambda *a: None, space="prior")
    for s in cfg["sigmas_gev"]:
        train_replicas(cfg, "Nref_prior", s, list(range(cfg["n_replicas"])), device="cpu", log=lambda *a: None)
    assert predict_on_delta_tanh.main(args_of(cfg)) == 0
    assert analyze_delta_tanh_mock.main(args_of(cfg)) == 0
    out = capsys.readouterr().out
    assert out.count("with the prior systematic (σ_tot,prior): mean |pull| = ") == len(cfg["sigmas_gev"])
    paper = load_config("tiny", trained.overrides, trained.root)      # the same audience without it
    assert predict_on_delta_tanh.main(args_of(paper)) == 0 and analyze_delta_tanh_mock.main(args_of(paper)) == 0
    for sigma in cfg["sigmas_gev"]:
        table = pd.read_csv(cfg.results_file("delta_tanh", sigma, "budget.csv"))
        assert list(table.columns) == ["E", "central", "stat", "rep", "sys_b", "sys_rho", "sys_n", "total",
                                       "sys_prior", "total_with_prior",
                                       *budget_columns("calibrated", centres=result_centres(cfg))[8:],
                                       "truth", "closure_level"]
        np.testing.assert_allclose(table["total_calibrated_paper"] ** 2, table["post_paper"] ** 2 + (
            table[["sys_b", "sys_rho", "sys_n", "sys_prior"]] ** 2).sum(axis=1), rtol=1e-8)
        assert np.all(np.isfinite(table.to_numpy())) and np.any(table["sys_prior"] > 0)
        np.testing.assert_allclose(table["total_with_prior"] ** 2, table["total"] ** 2 + table["sys_prior"] ** 2,
                                   rtol=1e-8)
        plain = pd.read_csv(paper.results_file("delta_tanh", sigma, "budget.csv"))
        assert "sys_prior" not in plain.columns and "total_with_prior" not in plain.columns
        np.testing.assert_array_equal(plain["total"], table["total"])      # the headline is the paper's
        with h5py.File(cfg.results_file("delta_tanh", sigma, "budget.hdf5"), "r") as h5:
            np.testing.assert_allclose(h5["total_with_prior"][()], table["total_with_prior"], rtol=1e-9)
            np.testing.assert_allclose(h5["sys_prior"][()], table["sys_prior"], rtol=1e-9)
            assert "delta_prior" in h5 and "pulls_with_prior" in h5 and "Nref_prior" in h5["ensembles"]
        with h5py.File(cfg.prediction_file("delta_tanh", "Nref_prior", sigma), "r") as h5:
            assert h5.attrs["ensemble"] == "Nref_prior"
        assert run_pipeline.budget_table_problem(cfg, cfg.results_file("delta_tanh", sigma, "budget.csv")) is None
        assert run_pipeline.budget_table_problem(paper, cfg.results_file("delta_tanh", sigma, "budget.csv"))


def test_mock_samples_are_reproducible_draws_of_the_lattice_noise(trained):
    """At the diagnostic level 0 the samples scatter around the exact correlator (level 1, the
    default, around one measurement of it: tests/test_closure.py)."""
    cfg = load_config("tiny", trained.overrides + ["n_boot=4000", "closure_level=0"], trained.root)
    a, b = mock_inputs(cfg, "O3"), mock_inputs(cfg, "O3")
    np.testing.assert_array_equal(a.samples, b.samples)
    assert not np.allclose(mock_inputs(cfg, "delta_tanh").samples[:, 0] / a.samples[:, 0], 1.0)
    noise = load_noise_file(cfg.input_path(cfg["noise_file"]), cfg)
    s = a.clean[0] / noise.mean[0]
    assert np.all(np.abs(a.samples.mean(axis=0) - a.clean) <= 4 * s * np.sqrt(np.diag(noise.cov) / 4000))
    rel = np.std(a.samples[:, :4], axis=0, ddof=1) / np.sqrt(s**2 * np.diag(noise.cov)[:4])
    np.testing.assert_allclose(rel, 1.0, atol=0.06)


def test_missing_checkpoints_and_ensemble(trained, tmp_path, capsys):
    """A missing replica is listed by name and the rest predicted; a missing ensemble makes its Σ
    NaN (never zero) with a warning, and the summary says σ_tot is incomplete."""
    cfg = copy_audience(trained, tmp_path)
    sigma = cfg["sigmas_gev"][0]
    gone = [cfg.checkpoint(sigma, "Nref_rho", r) for r in range(cfg["n_replicas"])]
    for path in gone:
        path.unlink()
    assert predict_on_delta_tanh.main(args_of(cfg)) == 0
    out = capsys.readouterr().out
    for path in gone:
        assert f"missing checkpoint: {path}" in out
    assert not cfg.prediction_file("delta_tanh", "Nref_rho", sigma).exists()
    assert cfg.prediction_file("delta_tanh", "Nref_rho", cfg["sigmas_gev"][1]).exists()
    assert analyze_delta_tanh_mock.main(args_of(cfg)) == 0
    out = capsys.readouterr().out
    assert "WARNING (σ = 0.44): Nref_rho is missing: sys_rho" in out
    assert "σ_tot incomplete" in out
    table = pd.read_csv(cfg.results_file("delta_tanh", sigma, "budget.csv"))
    assert table["sys_rho"].isna().all() and table["total"].isna().all()
    assert np.isfinite(table[["central", "stat", "rep", "sys_b", "sys_n"]].to_numpy()).all()


def test_foreign_checkpoint_is_refused(trained, tmp_path, capsys):
    cfg = copy_audience(trained, tmp_path)
    s0, s1 = cfg["sigmas_gev"]
    for r in range(cfg["n_replicas"]):
        shutil.copy(cfg.checkpoint(s1, "Nmax", r), cfg.checkpoint(s0, "Nmax", r))
    assert predict_on_O3_mock_sigma.main(args_of(cfg)) == 2
    assert f"a checkpoint of Nmax at σ = {s1}, found where Nmax at σ = {s0} belongs" in capsys.readouterr().err


def write_user_file(path, t, kernel="rratio", T=64, **datasets):
    with h5py.File(path, "w") as h5:
        h5["t"] = t
        for key, value in datasets.items():
            if key == "sample_kind":
                h5.attrs["sample_kind"] = value
            else:
                h5[key] = value
        if kernel is not None:
            h5.attrs["kernel"] = kernel
        if T is not None:
            h5.attrs["T"] = T


def test_user_data_bootstrap_jackknife_and_mean_cov(trained, tmp_path, capsys):
    """The same data given three ways.  Configurations c_i (i = 1..N) whose mean has covariance
    s²Σ: their jackknife samples, and N_boot draws of N(mean, s²Σ).  Through the networks, the
    jackknife formula and the bootstrap std must estimate the same σ_stat (a jackknife treated as
    bootstrap would be N-1 = 59 times too small)."""
    cfg = load_config("tiny", trained.overrides + ["n_boot=400"], trained.root)
    assert generate_delta_mock.main(args_of(cfg)) == 0
    with h5py.File(cfg.mock_file("delta_tanh"), "r") as h5:
        mean, cov = h5["mean"][()], h5["cov"][()]
    n = 60
    rng = np.random.default_rng(5)
    configs = mean + np.sqrt(n) * rng.standard_normal((n, cfg.n_t)) @ np.linalg.cholesky(cov).T
    configs += mean - configs.mean(axis=0)
    jackknife = (configs.sum(axis=0) - configs) / (n - 1)
    t_wide = np.arange(0, 40)                     # a superset of the input slices: selected
    wide = np.zeros((n, 40))
    wide[:, 1:33] = jackknife
    write_user_file(tmp_path / "jk.h5", t_wide, samples=wide, sample_kind="jackknife")
    argv = args_of(cfg)
    assert predict_on_user_data.main([str(tmp_path / "jk.h5"), "--name", "myjk"] + argv) == 0
    assert predict_on_user_data.main([str(cfg.mock_file("delta_tanh")), "--name", "mymc"] + argv) == 0
    for name in ("myjk", "mymc"):
        assert analyze_user_data.main(["--name", name] + argv) == 0
    sigma = cfg["sigmas_gev"][0]
    with h5py.File(cfg.prediction_file("myjk", "Nmax", sigma), "r") as h5:
        assert h5.attrs["sample_kind"] == "jackknife" and h5["predictions"].shape[0] == n
        np.testing.assert_array_equal(h5["input_samples"][()], jackknife)
        P = h5["predictions"][()].astype(np.float64)
    with h5py.File(cfg.prediction_file("mymc", "Nmax", sigma), "r") as h5:
        assert h5.attrs["sample_kind"] == "bootstrap" and h5["predictions"].shape[0] == 400
        assert "true_smeared_rho" not in h5
    m = P.mean(axis=1)
    by_hand = np.sqrt((n - 1) / n * ((m - m.mean(axis=0)) ** 2).sum(axis=0))
    jk = pd.read_csv(cfg.results_file("myjk", sigma, "budget.csv"))
    mc = pd.read_csv(cfg.results_file("mymc", sigma, "budget.csv"))
    assert "truth" not in jk.columns
    np.testing.assert_allclose(jk["stat"], by_hand, rtol=1e-5)
    ratio = np.median(jk["stat"] / mc["stat"])
    assert 0.6 < ratio < 1.6, ratio
    assert cfg.results_file("myjk", sigma, "result.png").exists()
    assert not cfg.results_file("myjk", sigma, "pulls.png").exists()
    out = capsys.readouterr().out
    assert "no truth for user data" in out
    # the covariance over energies: its diagonal is σ_tot² (the jackknife rule included), in the
    # HDF5 and the JSON; the correlated exports reload with the result's values and errors
    from result_files import read_budget_json, read_covariances
    covs = read_covariances(cfg.results_file("myjk", sigma, "budget.hdf5"))
    np.testing.assert_allclose(np.diag(covs["total"]), jk["total"] ** 2, rtol=1e-6)
    np.testing.assert_allclose(np.diag(covs["stat"]), jk["stat"] ** 2, rtol=1e-6)
    record = read_budget_json(cfg.results_file("myjk", sigma, "budget.json"))
    np.testing.assert_allclose(np.diag(np.array(record["covariance"]["total"])), jk["total"] ** 2, rtol=1e-6)
    assert cfg.results_file("myjk", sigma, "correlation.png").exists()
    gvar = pytest.importorskip("gvar")
    pytest.importorskip("pyerrors")
    import exports
    g = exports.load_gvar(cfg.results_file("myjk", sigma, "result.gvar"))["total"]
    np.testing.assert_allclose(gvar.mean(g), jk["central"], rtol=1e-8)
    np.testing.assert_allclose(gvar.sdev(g), jk["total"], rtol=1e-6)
    obs = exports.load_pyerrors(cfg.results_file("myjk", sigma, "result.json.gz"))["total"]
    np.testing.assert_allclose([o.dvalue for o in obs], jk["total"], rtol=1e-6)
    assert "gvar.load(path)" in out and "load_json_dict" in out


def test_bootstrap_samples_other_than_n_boot_are_refused_or_taken_all_and_recorded(trained, tmp_path, capsys):
    """Issue 22 item 2: 10 bootstrap samples with n_boot = 40 are one clear message; --n-boot all
    takes them as they are and the analysis then does not compare N_boot; --set n_boot=10 is
    recorded as such and analysed with it.  Every file records the number and origin."""
    cfg, argv = trained, args_of(trained)
    assert cfg["n_boot"] == 40
    samples = np.random.default_rng(2).normal(1.0, 0.01, (10, cfg.n_t)) * np.exp(-0.3 * cfg.t)
    path = tmp_path / "ten.h5"
    write_user_file(path, cfg.t, samples=samples, sample_kind="bootstrap")
    capsys.readouterr()
    assert predict_on_user_data.main([str(path), "--name", "myten"] + argv) == 2
    assert capsys.readouterr().err == (f"error: {path}, key 'samples': 10 bootstrap samples, the settings say "
                                       "n_boot = 40: use --n-boot all (take the file's samples as they are) or "
                                       "--set n_boot=10\n")
    sigma = cfg["sigmas_gev"][0]
    assert not cfg.prediction_file("myten", "Nmax", sigma).exists()
    assert predict_on_user_data.main([str(path), "--name", "myten", "--n-boot", "all"] + argv) == 0
    assert predict_on_user_data.main([str(path), "--name", "myten10", "--set", "n_boot=10"] + argv) == 0
    for name, n_boot in (("myten", "all"), ("myten10", 10)):
        with h5py.File(cfg.prediction_file(name, "Nmax", sigma), "r") as h5:
            assert (h5.attrs["n_samples"], h5.attrs["sample_origin"], h5.attrs["n_boot"]) == (
                10, "bootstrap samples given", n_boot)
    capsys.readouterr()
    for extra in ([], ["--set", "n_boot=10"], ["--set", "n_boot=77"]):     # "all": N_boot not compared
        assert analyze_user_data.main(["--name", "myten"] + argv + extra) == 0
    record = json.loads(cfg.results_file("myten", sigma, "budget.json").read_text())
    assert (record["n_samples"], record["sample_origin"], record["n_boot"]) == (10, "bootstrap samples given", "all")
    with h5py.File(cfg.results_file("myten", sigma, "budget.hdf5"), "r") as h5:
        assert (h5.attrs["n_samples"], h5.attrs["n_boot"]) == (10, "all")
    assert analyze_user_data.main(["--name", "myten10"] + argv + ["--set", "n_boot=10"]) == 0
    assert analyze_user_data.main(["--name", "myten10"] + argv) == 2          # made with 10, analysed with 40
    assert "key 'n_boot': the predictions were made with n_boot=10, the settings say 40" in capsys.readouterr().err
    write_user_file(tmp_path / "cfg.h5", cfg.t, samples=samples, sample_kind="configurations")
    assert predict_on_user_data.main([str(tmp_path / "cfg.h5"), "--name", "mycfg", "--n-boot", "all"] + argv) == 2
    assert "--n-boot all takes a file's bootstrap or jackknife samples as they are" in capsys.readouterr().err


@pytest.mark.parametrize("problem, expected", [
    ("no t", "key 't': missing"),
    ("short t", "lack [30, 31, 32]"),
    ("kernel", "key 'kernel': 'laplace', but the networks were trained with kernel = 'rratio'"),
    ("T", "key 'T': 48, but the networks were trained with T = 64"),
    ("no kernel", "key 'kernel': not stated"),
    ("no kind", "key 'sample_kind': None"),
    ("one sample", "1 sample(s); expected at least 2"),
    ("cov", "key 'cov': not positive definite"),
    ("nan", "key 'samples': contains NaN"),
    ("nothing", "key 'samples': missing"),
])
def test_bad_user_files(tiny_cfg, tmp_path, problem, expected):
    t = tiny_cfg.t
    good = np.exp(-0.5 * t) * (1 + 0.01 * np.random.default_rng(0).standard_normal((10, len(t))))
    path = tmp_path / "user.h5"
    kwargs = {"samples": good, "sample_kind": "bootstrap"}
    kernel, T = "rratio", 64
    if problem == "no t":
        with h5py.File(path, "w") as h5:
            h5["samples"] = good
    else:
        if problem == "short t":
            t, kwargs["samples"] = t[:-3], good[:, :-3]
        elif problem == "kernel":
            kernel = "laplace"
        elif problem == "T":
            T = 48
        elif problem == "no kernel":
            kernel = None
        elif problem == "no kind":
            del kwargs["sample_kind"]
        elif problem == "one sample":
            kwargs["samples"] = good[:1]
        elif problem == "cov":
            kwargs = {"mean": good[0], "cov": -np.eye(len(t))}
        elif problem == "nan":
            kwargs["samples"] = np.where(np.arange(len(t)) == 3, np.nan, good)
        elif problem == "nothing":
            kwargs = {}
        write_user_file(path, t, kernel=kernel, T=T, **kwargs)
    with pytest.raises(InputError) as err:
        read_user_samples(path, tiny_cfg, "user")
    assert str(path) in str(err.value) and expected in str(err.value)


def test_kernel_argument_conflicts_with_file(tiny_cfg, tmp_path):
    path = tmp_path / "user.h5"
    write_user_file(path, tiny_cfg.t, samples=np.ones((3, tiny_cfg.n_t)), sample_kind="bootstrap")
    with pytest.raises(InputError, match="the file says 'rratio' but --kernel says 'laplace'"):
        read_user_samples(path, tiny_cfg, "user", kernel="laplace")
    assert read_user_samples(path, tiny_cfg, "user", kind="jackknife").kind == "jackknife"


def test_analysis_refuses_predictions_of_different_samples(trained, tmp_path):
    cfg = load_config("tiny", trained.overrides, tmp_path)
    sigma = cfg["sigmas_gev"][0]
    for ens in cfg["ensembles"]:
        src = trained.prediction_file("O3", ens, sigma)
        if not src.exists():
            assert predict_on_O3_mock_sigma.main(args_of(trained)) == 0
        cfg.prediction_file("O3", ens, sigma).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, cfg.prediction_file("O3", ens, sigma))
    with h5py.File(cfg.prediction_file("O3", "Nref_n", sigma), "r+") as h5:
        h5["input_samples"][0, 0] *= 1.5
    with pytest.raises(InputError, match="key 'input_samples': differs from"):
        analysis.load_predictions(cfg, "O3", sigma)
    cfg.prediction_file("O3", "Nref_n", sigma).unlink()
    cfg.prediction_file("O3", "Nmax", sigma).unlink()
    with pytest.raises(ValueError, match="no predictions of Nmax"):
        bud.error_budget(analysis.load_predictions(cfg, "O3", sigma).predictions)


def test_no_checkpoints_at_all(tiny_cfg, capsys):
    assert predict_on_delta_tanh.main(args_of(tiny_cfg)) == 1
    assert "no checkpoint found" in capsys.readouterr().out


def test_validate_coverage_end_to_end(trained, tmp_path, capsys):
    """validate_coverage on the tiny audience and a copy of it posing as a second audience seed:
    both closure levels, R measurements, per-audience rows and their spread, the level in every
    output, and the PNGs."""
    import validate_coverage
    cfg = load_config("tiny", trained.overrides, tmp_path)
    audiences = validate_coverage.audience_configs(cfg, 2)
    second = audiences[1]
    assert audiences[0] is cfg and second["seed"] == cfg["seed"] + 1
    assert second.root == tmp_path / "audiences" / f"seed_{cfg['seed'] + 1}"
    assert f"seed={cfg['seed'] + 1}" in second.overrides
    for target in (tmp_path, second.root):
        for directory in [*trained.root.glob("trained_models_sigma*"), trained.root / "calibration"]:
            shutil.copytree(directory, target / directory.name)
    families = "O3_threshold,training_space,calibration_space"
    argv = ["--preset", "tiny", "--root", str(tmp_path), "--n-per-family", "4", "--measurements", "3",
            "--audience-seeds", "2", "--families", families, "--no-train"] + \
           [a for o in trained.overrides for a in ("--set", o)]
    assert validate_coverage.main(argv) == 0
    out_dir = tmp_path / "results" / "validation"
    table = pd.read_csv(out_dir / "coverage.csv")
    assert len(table) == 2 * 3 * len(cfg["sigmas_gev"]) * 2          # seeds x families x σ x levels
    assert set(table["level"]) == {0, 1} and set(table["audience_seed"]) == {cfg["seed"], cfg["seed"] + 1}
    assert set(table["n_rows"]) == {12} and set(table["n_densities"]) == {4}
    summary = pd.read_csv(out_dir / "coverage_summary.csv")
    assert set(summary["n_audiences"]) == {2}
    # the copy predicts exactly what the original does: zero spread over these two "audiences"
    np.testing.assert_allclose(summary["coverage_spread"], 0.0, atol=1e-12)
    densities = pd.read_csv(out_dir / "densities.csv")
    assert len(densities) == 2 * 3 * len(cfg["sigmas_gev"]) * 2 * 4 * 3
    with h5py.File(out_dir / "validation.hdf5", "r") as h5:
        assert json.loads(h5.attrs["closure_levels"]) == [1, 0] and h5.attrs["measurements"] == 3
        g = h5[f"audience_seed_{cfg['seed']}/O3_threshold/sigma_{cfg['sigmas_gev'][0]}"]
        assert g["level_1"].attrs["closure_level"] == 1 and g["level_1/central"].shape == (4, 3, cfg["n_energies"])
        assert not np.allclose(g["level_1/central"][()], g["level_0/central"][()])
        measured, exact = h5["O3_threshold/measured_correlators"][()], h5["O3_threshold/correlators"][()]
        assert measured.shape == (4, 3, cfg.n_t) and np.all(measured[:, 0] != exact)
        assert not np.allclose(measured[:, 0], measured[:, 1])       # measurements differ
    md = (out_dir / "coverage.md").read_text()
    assert "level 0" in md and "R_bv" in md and "Per audience" in md
    assert np.all(table["chi2_dof_median"] >= 1) and np.all(np.isfinite(table["chi2_per_dof"]))
    assert "χ²/k" in md
    for png in ("pulls.png", "coverage_vs_energy.png", "chi2.png", f"examples_sigma{cfg['sigmas_gev'][0]}.png"):
        assert (out_dir / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| training_space |" in capsys.readouterr().out
    # every error side by side, the calibrated ones from the audience's calibration file
    for error in ("total", "total_scaled", "total_calibrated", "total_calibrated_paper", "total_calibrated_median"):
        for figure in ("coverage", "mean_abs_pull", "r_bv", "crps", "sharpness"):
            assert np.all(np.isfinite(table[f"{figure}_{error}"])), (figure, error)
    np.testing.assert_array_equal(table["coverage_total"], table["coverage"])
    np.testing.assert_array_equal(table["coverage_total_calibrated"], table["coverage_total_calibrated_median"])
    held = table.set_index("family")["held_out_from_calibration"]
    assert not held["training_space"].any() and not held["calibration_space"].any() and not held["O3_threshold"].any()
    assert "Every error side by side" in md and (out_dir / "pit.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_methods_scores_every_method_on_the_same_samples_and_resumes(trained, tmp_path, capsys,
                                                                            monkeypatch):
    """compare_methods, small: the tiny audience (paper and calibrated results, through peers.Audience)
    and MEM on 2 densities x 1 measurement of one family at one σ.  The audience's parts hold exactly
    what budget.error_budget and the calibration give for those samples; every method's table row is
    closure.error_figures of its rows; a second run finds every part and runs nothing; a part made
    with other settings is recomputed."""
    import compare_methods
    from validate_coverage import draw_inputs

    import closure
    import peers
    from budget import error_budget
    from prediction import find_checkpoints, predict_ensemble
    from prediction_files import InputSamples
    monkeypatch.setattr(peers, "BOOTSTRAP_FITS", 3)            # MEM's error from 3 bootstrap fits: fast
    out = tmp_path / "methods"
    argv = args_of(trained) + ["--out", str(out), "--methods", "audience,mem", "--families", "O3_threshold",
                               "--n-per-family", "2", "--measurements", "1", "--sigmas", "0.44"]
    assert compare_methods.main(argv) == 0
    printed = capsys.readouterr().out
    summary = pd.read_csv(out / "methods_summary.csv")
    assert set(summary["method"]) == {"audience", "audience_calibrated", "mem"}
    assert "1 peer part(s) to run" not in printed and "2 peer part(s) to run" in printed
    # the audience's part: its result on exactly the benchmark's samples
    noise = load_noise_file(trained.input_path(trained["noise_file"]), trained)
    densities, _, samples = draw_inputs(trained, ["O3_threshold"], 2, 1, noise)["O3_threshold"]
    record = json.loads((out / "parts" / f"audience_seed{trained['seed']}" / "O3_threshold_sigma0.44_d1.json")
                        .read_text())
    inputs = InputSamples("x", samples[1][1, 0], "bootstrap", "given", len(samples[1][1, 0]))
    predictions = {e: predict_ensemble(trained, inputs, 0.44, e, find_checkpoints(trained, 0.44, e)[0], "cpu")[0]
                   for e in trained["ensembles"]}
    b = error_budget(predictions)
    np.testing.assert_allclose(record["rows"]["audience"][0]["central"], b.central, rtol=1e-6)
    np.testing.assert_allclose(record["rows"]["audience"][0]["error"], b.total, rtol=1e-6)
    assert record["rows"]["audience_calibrated"][0]["details"]["centre"] == trained["calibrated_centre"]
    # every row of the table is closure.error_figures of the parts' rows
    truth = np.stack([d.truth[0.44] for d in densities])
    for method in ("audience", "mem"):
        rows = [json.loads((out / "parts" / (f"audience_seed{trained['seed']}" if method == "audience" else method)
                            / f"O3_threshold_sigma0.44_d{i}.json").read_text())["rows"] for i in range(2)]
        rows = [r[method][0] if method == "audience" else r[0] for r in rows]
        central, error = np.array([r["central"] for r in rows]), np.array([r["error"] for r in rows])
        figures = closure.error_figures(central, truth, error)
        row = summary[summary["method"] == method].iloc[0]
        for name in ("coverage", "mean_abs_pull", "crps", "sharpness"):
            assert row[name] == pytest.approx(figures[name], rel=1e-5), (method, name)
        assert np.isfinite(row["chi2_per_dof"]) and row["seconds_per_correlator"] > 0
    md = (out / "O3_threshold.md").read_text()
    assert "MEM (Bryan)" in md and "lowest CRPS" in md and peers.mem_settings(0.2)[:40] in md
    assert (out / "O3_threshold.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(pd.read_csv(out / "rows.csv")) == 3 * 2
    # resumed: nothing left to run; a part made of something else is recomputed
    assert compare_methods.main(argv) == 0
    assert "0 peer part(s) to run" in capsys.readouterr().out
    part = out / "parts" / "mem" / "O3_threshold_sigma0.44_d0.json"
    record = json.loads(part.read_text())
    part.write_text(json.dumps({**record, "made_of": "other"}))
    assert compare_methods.main(argv + ["--methods", "mem"]) == 0
    assert "1 peer part(s) to run" in capsys.readouterr().out


def test_budget_json_holds_every_column_settings_and_provenance(trained):
    """The budget as JSON (one object per σ) carries exactly the table's columns at full precision."""
    cfg = trained
    assert predict_on_O3_mock_sigma.main(args_of(cfg)) == 0
    assert analyze_O3_mock_sigma.main(args_of(cfg)) == 0
    for sigma in cfg["sigmas_gev"]:
        record = json.loads(cfg.results_file("O3", sigma, "budget.json").read_text())
        table = pd.read_csv(cfg.results_file("O3", sigma, "budget.csv"))
        assert record["columns"] == list(table.columns) and "truth" in record["columns"]
        with h5py.File(cfg.results_file("O3", sigma, "budget.hdf5"), "r") as h5:
            for column in record["columns"]:
                values = np.array([np.nan if v is None else v for v in record[column]])
                np.testing.assert_array_equal(values, h5[column][()], err_msg=column)
        assert record["sigma_gev"] == sigma and record["sigma"] == cfg.sigma(sigma)
        # what was used (issue 11 item 5): the analysis' own few settings, none of its overrides
        # (max_epochs, noise_file changed nothing here), and each prediction file's own configuration
        own = record["settings"]["analysis"]
        assert own == {"preset": "tiny", "overrides": [], "values": {
            "a_inv_gev": cfg["a_inv_gev"], "calibrated_centre": "median", "ensembles": cfg["ensembles"],
            "interval_networks": True, "prior_systematic": False, "sigmas_gev": cfg["sigmas_gev"]}}
        assert record["provenance"]["overrides"] == []
        for ens in cfg["ensembles"]:
            with h5py.File(cfg.prediction_file("O3", ens, sigma), "r") as h5:
                made = json.loads(h5.attrs["config"])
            assert record["settings"]["prediction_files"][ens] == made
            assert made["values"]["n_boot"] == cfg["n_boot"] and made["overrides"] == cfg.overrides
        assert record["provenance"]["code_version"] and record["provenance"]["seed"] == cfg["seed"]
        assert "lattice units" in record["energy_unit"]


def copy_predictions(cfg, mock, root):
    """The prediction files of ``mock`` under another root (the same settings)."""
    for sigma in cfg["sigmas_gev"]:
        for ens in cfg["ensembles"]:
            target = cfg.prediction_file(mock, ens, sigma)
            copy = root / target.relative_to(cfg.root)
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(target, copy)
    return load_config("tiny", cfg.overrides, root)


def test_analysis_refuses_settings_its_prediction_files_were_not_made_with(trained, tmp_path, capsys):
    """Issue 11 item 5: `--set n_boot=...` given to the analysis alone changes nothing (the
    prediction files hold their N_boot samples), so it is refused, naming file, key and both
    values, and never recorded; an override the analysis does use is recorded, an agreeing one not."""
    assert predict_on_O3_mock_sigma.main(args_of(trained)) == 0
    cfg = copy_predictions(trained, "O3", tmp_path)
    sigma = cfg["sigmas_gev"][0]
    capsys.readouterr()
    assert analyze_O3_mock_sigma.main(args_of(cfg) + ["--set", "n_boot=1"]) == 2      # the schema's refusal
    assert "n_boot" in capsys.readouterr().err
    n_boot = cfg["n_boot"]
    for override, key, value in ((f"n_boot={n_boot + 1}", "n_boot", n_boot), ("seed=5", "seed", cfg["seed"]),
                                 ("closure_level=0", "closure_level", 1),
                                 ("ensembles.Nref_n.arch=arcM", "ensembles.Nref_n", cfg["ensembles"]["Nref_n"])):
        assert analyze_O3_mock_sigma.main(args_of(cfg) + ["--set", override]) == 2
        out = capsys.readouterr().err
        first = "Nref_n" if key.startswith("ensembles") else "Nmax"      # the first file that disagrees
        wanted = load_config("tiny", cfg.overrides + [override], tmp_path)
        wanted = wanted["ensembles"]["Nref_n"] if first == "Nref_n" else wanted[key]
        assert (f"{cfg.prediction_file('O3', first, sigma)}, key '{key}': the predictions were made with "
                f"{key}={value!r}, the settings say {wanted!r}") in out
        assert not cfg.results_file("O3", sigma, "budget.json").exists()
    # agreeing and used overrides: only the one the analysis used is recorded as its own
    assert analyze_O3_mock_sigma.main(args_of(cfg) + ["--set", f"n_boot={n_boot}", "--set",
                                                      f"sigmas_gev=[{sigma}]"]) == 0
    record = json.loads(cfg.results_file("O3", sigma, "budget.json").read_text())
    assert record["settings"]["analysis"]["overrides"] == [f"sigmas_gev=[{sigma}]"]
    assert record["settings"]["analysis"]["values"]["sigmas_gev"] == [sigma]
    assert "n_boot" not in record["settings"]["analysis"]["values"]
    assert {made["values"]["n_boot"] for made in record["settings"]["prediction_files"].values()} == {n_boot}
    assert not cfg.results_file("O3", cfg["sigmas_gev"][1], "budget.json").exists()


@pytest.mark.parametrize("script", [predict_on_user_data, analyze_user_data])
@pytest.mark.parametrize("name", ["../../elsewhere/x", "a/b", "O3", ""])
def test_user_data_name_cannot_leave_the_root(tiny_cfg, tmp_path, script, name, capsys):
    """Issue 11 item 3: one name check for both user-data scripts; nothing read or written."""
    argv = (["unused.h5"] if script is predict_on_user_data else []) + ["--name", name] + args_of(tiny_cfg)
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(SystemExit) as exit_status:
        script.main(argv)
    assert exit_status.value.code == 2
    assert "use letters, digits, - and _" in capsys.readouterr().err
    assert sorted(tmp_path.rglob("*")) == before


# --- every format of correlator_files gives the networks the same samples ------------------------
def per_configuration_files(tmp_path, x):
    """The same configurations x [N, 64] (t = 0..63) in every format: {path: format}."""
    from test_correlator_files import write_gvar, write_lsdensities, write_pyerrors
    files = {tmp_path / "c.h5": "hdf5", tmp_path / "c.npy": "npy", tmp_path / "c.txt": "text",
             tmp_path / "c.json.gz": "pyerrors", tmp_path / "c.data": "gvar", tmp_path / "c.dat": "lsdensities"}
    write_user_file(tmp_path / "c.h5", np.arange(64), samples=x, sample_kind="configurations")
    np.save(tmp_path / "c.npy", x)
    (tmp_path / "c.txt").write_text("\n".join(" ".join(f"{v:.17g}" for v in row) for row in x))
    write_pyerrors(tmp_path / "c.json.gz", x)
    write_gvar(tmp_path / "c.data", x)
    write_lsdensities(tmp_path / "c.dat", x)
    return files


def test_every_format_gives_the_hdf5_paths_samples(tiny_cfg, tmp_path):
    """Per-configuration data in each format: the same bootstrap (seeded) and jackknife samples
    as the HDF5 path, bitwise (pyerrors, which stores mean + deltas: to round-off)."""
    t = np.arange(64)
    rng = np.random.default_rng(2)
    x = (np.exp(-0.5 * t) + np.exp(-0.5 * (64 - t))) * (1 + 0.01 * rng.standard_normal((30, 64)))
    files = per_configuration_files(tmp_path, x)
    for method in ("bootstrap", "jackknife"):
        options = dict(kernel="rratio", T=64, fold=True, bin_size=2, resampling=method)
        reference = read_user_samples(tmp_path / "c.h5", tiny_cfg, "u", **options)
        folded = (x[:, :33] + x[:, (64 - np.arange(33)) % 64]) / 2
        bins = folded[:, 1:33].reshape(15, 2, 32).mean(axis=1)
        if method == "jackknife":
            np.testing.assert_allclose(reference.samples, (bins.sum(axis=0) - bins) / 14, rtol=1e-14)
        else:
            assert reference.samples.shape == (tiny_cfg["n_boot"], 32)
            assert reference.source["seed"] == tiny_cfg["seed"] and "user-bootstrap:u" in reference.source["rng"]
        assert reference.kind == method and reference.source["n_bins"] == 15
        for path, fmt in files.items():
            inputs = read_user_samples(path, tiny_cfg, "u", **options)
            assert inputs.kind == method and inputs.source["format"] == fmt
            if fmt == "pyerrors":
                np.testing.assert_allclose(inputs.samples, reference.samples, rtol=1e-15, err_msg=fmt)
            else:
                np.testing.assert_array_equal(inputs.samples, reference.samples, err_msg=fmt)


def test_geometry_of_user_formats(tiny_cfg, tmp_path):
    x = 1 + 0.01 * np.random.default_rng(0).standard_normal((10, 64))
    files = per_configuration_files(tmp_path, x)
    with pytest.raises(InputError, match=r"c\.npy, key 'kernel': not stated"):      # no metadata in npy
        read_user_samples(tmp_path / "c.npy", tiny_cfg, "u")
    # lsdensities' header states T = 64; the preset is told T = 48: refused, without a kernel list
    cfg48 = load_config("tiny", ["T=48", "t_max=32"] + tiny_cfg.overrides, tmp_path)
    with pytest.raises(InputError) as err:
        read_user_samples(tmp_path / "c.dat", cfg48, "u", kernel="rratio")
    assert "key 'T': 64, but the networks were trained with T = 48; a geometry mismatch" in str(err.value)
    assert "kernels" not in str(err.value)
    with pytest.raises(InputError, match=r"c\.dat, key 'T': the file says 64 but --t says 32"):
        read_user_samples(tmp_path / "c.dat", tiny_cfg, "u", kernel="rratio", T=32)
    with pytest.raises(InputError, match=r"c\.npy.*--bin 2: binning is for per-configuration data"):
        read_user_samples(tmp_path / "c.npy", tiny_cfg, "u", kind="bootstrap", kernel="rratio", T=64, bin_size=2)
    np.save(tmp_path / "few.npy", x[:3])
    with pytest.raises(InputError, match=r"few\.npy: 3 configuration\(s\) make 1 bin\(s\) of 2; expected at least 2"):
        read_user_samples(tmp_path / "few.npy", tiny_cfg, "u", kernel="rratio", T=64, bin_size=2)
    np.save(tmp_path / "short.npy", x[:, :20])
    with pytest.raises(InputError, match=r"short\.npy, key 't': time slices .* lack \[20, 21"):
        read_user_samples(tmp_path / "short.npy", tiny_cfg, "u", kernel="rratio", T=64)
    assert len(files) == 6


def test_overflowing_user_values_are_refused_before_any_file(trained, tmp_path, capsys):
    """Issue 11 item 9: samples x 1e300 are finite in float64 but not once standardised in float32."""
    t = trained.t
    good = np.exp(-0.5 * t) * (1 + 0.01 * np.random.default_rng(0).standard_normal((10, len(t))))
    write_user_file(tmp_path / "huge.h5", t, samples=good * 1e300, sample_kind="bootstrap")
    cfg = load_config("tiny", trained.overrides, trained.root)
    rc = predict_on_user_data.main([str(tmp_path / "huge.h5"), "--name", "huge", "--n-boot", "all"] + args_of(cfg))
    err = capsys.readouterr().err
    assert rc == 2 and f"{tmp_path / 'huge.h5'}, key 'samples': sample 0, t = 1" in err
    assert "float32" in err
    assert not list(cfg.root.glob("mock_predictions_sigma*/huge_*"))
    with h5py.File(tmp_path / "c.h5", "w") as h5:
        h5["t"], h5["samples"] = t, good * (1 + 1j)
        h5.attrs.update(sample_kind="bootstrap", kernel="rratio", T=64)
    with pytest.raises(InputError, match=r"c\.h5, key 'samples': complex values"):
        read_user_samples(tmp_path / "c.h5", cfg, "c")


def test_analysis_refuses_a_calibration_made_with_other_networks(trained, tmp_path, capsys):
    """One interval network retrained (here: one weight changed) after the calibration: the analysis
    names the calibration file and the network, and writes no result."""
    cfg = copy_audience(trained, tmp_path)
    shutil.copytree(trained.root / "calibration", tmp_path / "calibration")
    assert predict_on_delta_tanh.main(args_of(cfg)) == 0
    changed = cfg.checkpoint(cfg["sigmas_gev"][0], "Nmax_interval", 1)
    record = torch.load(changed, weights_only=True)
    record["state_dict"]["fc2.bias"] += 1.0
    torch.save(record, changed)
    with pytest.raises(analysis.AnalysisFailed, match=f"failed for sigma = \\[{cfg['sigmas_gev'][0]}\\]") as failed:
        analysis.analyze(cfg, "delta_tanh")
    out = str(failed.value)
    assert "calibration_sigma44.h5" in out and "made with other networks" in out and "interval_1_best.pth" in out
    assert not cfg.results_file("delta_tanh", cfg["sigmas_gev"][0], "budget.csv").exists()
    assert cfg.results_file("delta_tanh", cfg["sigmas_gev"][1], "budget.csv").exists()   # the other σ is fine


def test_calibration_is_kept_when_up_to_date_and_resumes_the_missing_sigma(trained, tmp_path, capsys):
    cfg = copy_audience(trained, tmp_path)
    shutil.copytree(trained.root / "calibration", tmp_path / "calibration")
    first, second = (cfg.calibration_file(s) for s in cfg["sigmas_gev"])
    stamp = first.stat().st_mtime_ns
    assert calibrate_sigma.main(args_of(cfg)) == 0
    out = capsys.readouterr().out
    assert out.count("up to date: ") == 2 and "wrote" not in out
    second.unlink()                                      # an interrupted calibration: one σ missing
    assert calibrate_sigma.main(args_of(cfg)) == 0
    out = capsys.readouterr().out
    assert out.count("up to date: ") == 1 and f"wrote {second}" in out
    assert first.stat().st_mtime_ns == stamp
    again, made = read_calibration(cfg, cfg["sigmas_gev"][1]), read_calibration(trained, trained["sigmas_gev"][1])
    for centre in made.factors:                          # the same streams: the same factors
        np.testing.assert_array_equal(again.factors[centre].Q, made.factors[centre].Q)
    np.testing.assert_array_equal(again.S, made.S)
    assert again.checkpoints == made.checkpoints and len(made.checkpoints) == 5 * cfg["n_replicas"]


# --- inputs far from the training's (prediction.input_check) ---------------------------------------
def check_of(samples, kind="bootstrap", mu=None, gamma=None):
    from prediction import input_check
    from prediction_files import InputSamples
    t = np.arange(1, samples.shape[1] + 1)
    meta = {"mu": np.zeros(len(t)) if mu is None else mu, "gamma": np.ones(len(t)) if gamma is None else gamma,
            "ensemble": "Nmax"}
    return input_check(InputSamples("mine", samples, kind, "given", "all"), meta, t)


def test_every_kernel_is_non_negative():
    """The sign criterion of input_check rests on it: b(t, ω) ≥ 0, so ρ ≥ 0 gives C(t) ≥ 0."""
    from sigma_model_utils import KERNELS, kernel
    omega = np.concatenate([np.geomspace(1e-6, 50.0, 400), [0.0]])
    for kind in KERNELS:
        with np.errstate(divide="ignore", invalid="ignore"):
            b = kernel(np.arange(0, 65)[:, None], omega[None, :-1], kind, 64)
        assert np.all(b >= 0), kind


def test_input_check_flags_a_negative_correlator_and_not_a_noisy_tail():
    rng = np.random.default_rng(3)
    t = np.arange(1, 9)
    clean = np.exp(-0.5 * t)
    err = 0.008 * clean[0] * np.ones(len(t))              # the tail is noise-dominated
    samples = clean + err * rng.standard_normal((400, len(t)))
    good = check_of(samples, mu=clean, gamma=clean)
    assert good["warnings"] == [] and good["negative_t"] == []
    # the tail pushed below zero by 3 errors: noise, not flagged; by 8 errors: flagged
    for shift, flagged in ((3.0, []), (8.0, [8])):
        tail = samples.copy()
        tail[:, -1] += -clean[-1] - shift * err[-1]
        assert check_of(tail, mu=clean, gamma=clean)["negative_t"] == flagged
    negated = check_of(-samples, mu=clean, gamma=clean)
    assert negated["negative_t"] == list(range(1, 8))     # |C| / err = 125 exp(-(t-1)/2) > 5: t < 7.44
    assert len(negated["warnings"]) == 1 and "no non-negative spectral density" in negated["warnings"][0]
    # jackknife samples scatter N-1 times less: their error is the jackknife formula's
    n = 50
    jk = clean + (err / np.sqrt(n - 1)) * rng.standard_normal((n, len(t)))
    jk[:, -1] += -clean[-1] - 3.0 * err[-1]               # 3 errors below zero (about 21 naive ones)
    assert check_of(jk, kind="jackknife", mu=clean, gamma=clean)["negative_t"] == []
    assert check_of(jk, kind="bootstrap", mu=clean, gamma=clean)["negative_t"] == [8]


def test_input_check_distance_from_the_training_correlators():
    mu, gamma = np.array([4.0, 2.0, 1.0, 0.5]), np.array([2.0, 1.0, 0.5, 0.25])
    centre = np.array([5.0, 2.5, 1.0, 3.0])                   # |C - mu| / gamma = 0.5, 0.5, 0, 10
    samples = np.tile(centre, (3, 1)) + np.array([[-1e-3], [0.0], [1e-3]])
    check = check_of(samples, mu=mu, gamma=gamma)
    assert check["distance"] == pytest.approx(10.0) and check["distance_t"] == 4 and check["warnings"] == []
    samples[:, 3] += 0.01                                     # 10.04: beyond the limit
    far = check_of(samples, mu=mu, gamma=gamma)
    assert far["distance"] == pytest.approx(10.04) and len(far["warnings"]) == 1
    assert "10 standard deviations of Nmax's training correlators" in far["warnings"][0]
    assert "at t = 4" in far["warnings"][0]


def test_a_negated_correlator_is_flagged_in_every_file_and_the_summary(trained, tmp_path, capsys):
    """Every value of a good rratio correlator negated (issue: accepted silently, a negative density
    with calibrated errors): the prediction and the analysis end with a WARNING naming the slices,
    the prediction files and budget files record the check; the correlator itself is not flagged."""
    cfg = load_config("tiny", trained.overrides, trained.root)
    assert generate_delta_mock.main(args_of(cfg)) == 0
    with h5py.File(cfg.mock_file("delta_tanh"), "r") as h5:
        mean, cov = h5["mean"][()], h5["cov"][()]
    argv = args_of(cfg)
    for name, sign in (("good", 1.0), ("negated", -1.0)):
        write_user_file(tmp_path / f"{name}.h5", cfg.t, mean=sign * mean, cov=cov)
        assert predict_on_user_data.main([str(tmp_path / f"{name}.h5"), "--name", name] + argv) == 0
        predicted = capsys.readouterr().out
        assert analyze_user_data.main(["--name", name] + argv) == 0
        analysed = capsys.readouterr().out
        summary = analysed.split(f"Summary for {name}:")[1]
        sigma = cfg["sigmas_gev"][0]
        with h5py.File(cfg.prediction_file(name, "Nmax", sigma), "r") as h5:
            check = json.loads(h5.attrs["input_check"])
            centre = h5["input_samples"][()].mean(axis=0)
        with h5py.File(cfg.results_file(name, sigma, "budget.hdf5"), "r") as h5:
            recorded = json.loads(h5.attrs["input_check"])
            warnings = json.loads(h5.attrs["warnings"])
        record = json.loads(cfg.results_file(name, sigma, "budget.json").read_text())
        assert recorded["Nmax"] == check and record["provenance"]["input_check"]["Nmax"] == check
        mu, gamma = checkpoint_mu_gamma(cfg, sigma)
        assert check["distance"] == pytest.approx(np.abs((centre - mu) / gamma).max(), rel=1e-12)
        if sign > 0:
            assert check["negative_t"] == [] and check["warnings"] == []
            assert "WARNING" not in predicted and "WARNING" not in summary
        else:
            assert check["negative_t"][:3] == [1, 2, 3] and len(check["negative_t"]) >= 10
            line = "no non-negative spectral density gives that correlator"
            assert line in check["warnings"][0] and any(line in w for w in warnings)
            assert "WARNING: negated: its central value is below zero" in predicted
            assert "WARNING: negated" in summary and line in summary


def checkpoint_mu_gamma(cfg, sigma):
    from checkpoints import load_checkpoint
    _, meta = load_checkpoint(cfg.checkpoint(sigma, "Nmax", 0))
    return meta["mu"], meta["gamma"]


# --- bad input during an analysis: one line on stderr, status 2; the other σ analysed ---------------
def _truncate(path):
    path.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2])


def _drop_q(path):
    with h5py.File(path, "r+") as h5:
        del h5["Q/median"]


def _other_audience(path):
    """A calibration made with other networks: the same file, the SHA-256 it records changed."""
    with h5py.File(path, "r+") as h5:
        hashes = json.loads(h5.attrs["checkpoints"])
        hashes = {name: "0" * 64 for name in hashes}
        h5.attrs["checkpoints"] = json.dumps(hashes, sort_keys=True)


@pytest.fixture(scope="module")
def analysed_copy(trained, tmp_path_factory):
    """A copy of the audience, its calibration and its delta + tanh predictions (to damage)."""
    root = tmp_path_factory.mktemp("damaged")
    cfg = copy_audience(trained, root)
    shutil.copytree(trained.root / "calibration", root / "calibration")
    assert predict_on_delta_tanh.main(args_of(cfg)) == 0
    return cfg


@pytest.mark.parametrize("damage,expected", [
    ("truncated calibration", "calibration_sigma44.h5: not a readable HDF5 file"),
    ("no Q", "calibration_sigma44.h5, key 'Q/median': missing"),
    ("another audience", "calibration_sigma44.h5, key 'checkpoints': made with other networks"),
    ("deleted interval network", "interval_0_best.pth: missing: a calibration is made with"),
])
def test_bad_input_during_an_analysis_is_one_line_on_stderr_and_status_2(analysed_copy, damage, expected, capsys):
    cfg = analysed_copy
    sigma, other = cfg["sigmas_gev"]
    calibration_file, network = cfg.calibration_file(sigma), cfg.checkpoint(sigma, "Nmax_interval", 0)
    kept = {p: p.read_bytes() for p in (calibration_file, network)}
    damages = {"truncated calibration": lambda: _truncate(calibration_file), "no Q": lambda: _drop_q(calibration_file),
               "another audience": lambda: _other_audience(calibration_file),
               "deleted interval network": network.unlink}
    capsys.readouterr()
    try:
        damages[damage]()
        assert analyze_delta_tanh_mock.main(args_of(cfg) + ["--force"]) == 2
        out, err = capsys.readouterr()
        assert err.count("\n") == 1 and err.startswith(f"error: delta_tanh: analysis failed for sigma = [{sigma}]: "
                                                         f"sigma = {sigma}: {cfg.root}/")
        assert expected in err and "ERROR" not in out
        assert f"wrote {cfg.results_file('delta_tanh', other, 'budget.csv')}" in out     # the other σ analysed
    finally:
        for path, data in kept.items():
            path.write_bytes(data)


def test_a_truncated_interval_network_is_rewritten_by_its_training_not_by_calibrating(analysed_copy, capsys):
    """The analysis and the calibration name the training command of the damaged network; run, it
    writes the network again byte for byte from its state, and the analysis succeeds."""
    cfg = analysed_copy
    sigma = cfg["sigmas_gev"][0]
    network = cfg.checkpoint(sigma, "Nmax_interval", 0)
    original = network.read_bytes()
    try:
        _rewritten_by_its_training(cfg, sigma, network, original, capsys)
    finally:
        network.write_bytes(original)


def _rewritten_by_its_training(cfg, sigma, network, original, capsys):
    _truncate(network)
    command = (f"python hpc_train_sigma.py --preset tiny --ensemble Nmax_interval --replica 0 --sigma {sigma} "
               f"--root {cfg.root}")
    capsys.readouterr()
    assert analyze_delta_tanh_mock.main(args_of(cfg) + ["--force"]) == 2
    err = capsys.readouterr().err
    assert f"{network}: unreadable (not a readable checkpoint" in err and f"`{command}" in err
    assert "calibrate again" not in err
    assert calibrate_sigma.main(args_of(cfg) + ["--sigma", str(sigma)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{network}: not a readable checkpoint" in err and f"`{command}" in err
    remedy = err[err.index("`python ") + 1:err.rindex("`")].split()
    assert hpc_train_sigma.main(remedy[2:]) == 0
    assert network.read_bytes() == original
    assert analyze_delta_tanh_mock.main(args_of(cfg) + ["--force"]) == 0


def test_the_calibrated_centre_is_chosen_at_analysis(analysed_copy, capsys):
    """The predictions do not depend on the centre: the analysis takes either."""
    cfg = analysed_copy
    assert analyze_delta_tanh_mock.main(args_of(cfg) + ["--set", "calibrated_centre=paper"]) == 0
    record = json.loads(cfg.results_file("delta_tanh", cfg["sigmas_gev"][0], "budget.json").read_text())
    assert record["settings"]["analysis"]["values"]["calibrated_centre"] == "paper"


@pytest.mark.parametrize("override", ["sigmas_gev=[0.44]", "nb_list=[16,32,48]", "nrho_list=[200,400,800]",
                                      "prior_systematic=true", "interval_networks=false calibrated_centre=audience",
                                      "n_cal=20", "n_boot_cal=3", "calibrated_centre=paper", "calibration_bins=2"])
def test_a_setting_the_predictions_do_not_depend_on_is_not_compared(tiny_cfg, override):
    from prediction_files import NOT_DEPENDED_ON, check_made_with
    assert all(item.partition("=")[0] in NOT_DEPENDED_ON for item in override.split())
    attrs = {"config": tiny_cfg.to_json(), "n_boot": tiny_cfg["n_boot"]}
    reader = load_config("tiny", tiny_cfg.overrides + override.split(), tiny_cfg.root)
    assert check_made_with(reader, "f.hdf5", attrs, "Nmax") is not None
    for depended_on in ("n_boot=41", "calibration_space=training", "seed=5"):      # the check can fail
        with pytest.raises(InputError, match=f"key '{depended_on.partition('=')[0]}': the predictions were made"):
            check_made_with(load_config("tiny", reader.overrides + [depended_on], tiny_cfg.root), "f.hdf5", attrs,
                            "Nmax")


def test_calibration_states_its_work_first_and_shows_its_progress(analysed_copy, monkeypatch, capsys):
    """The estimate printed before the work, checked by counting: N_cal·N_boot,cal samples, each
    through every network the calibration file records; the chunks as the progress bar counts them."""
    cfg = analysed_copy
    sigma = cfg["sigmas_gev"][0]
    monkeypatch.setattr(calibrate_sigma, "CHUNK_ITEMS", 5)
    capsys.readouterr()
    assert calibrate_sigma.main(args_of(cfg) + ["--sigma", str(sigma), "--force"]) == 0
    out, err = capsys.readouterr()
    networks = len(read_calibration(cfg, sigma).checkpoints)
    samples = cfg["n_cal"] * cfg["n_boot_cal"]
    chunks = -(-cfg["n_cal"] // 5)
    assert (f"N_cal = {cfg['n_cal']} densities x N_boot,cal = {cfg['n_boot_cal']} = {samples} samples, each "
            f"predicted by {networks} networks ({samples * networks:.3g} network evaluations) in {chunks} chunk(s) "
            "of up to 5 densities; about ") in out.splitlines()[0]
    assert "calibration predictions: 100%" in err and f" {chunks}/{chunks} " in err
    assert "calibration-space densities: 100%" in err


# --- several correlators in one call ------------------------------------------------------------------
def user_correlator_file(path, t, seed):
    """Per-configuration data of a smooth positive correlator on the slices ``t``."""
    rng = np.random.default_rng(seed)
    configs = np.exp(-0.4 * t) * (1 + 0.02 * rng.standard_normal((30, len(t))))
    write_user_file(path, t, samples=configs, sample_kind="configurations")
    return path


def outputs_of(cfg, names) -> dict:
    """{file name: its content} of every prediction and result file of ``names``, less what records
    when and by which command it was made (the provenance's ``created`` and ``command``, pyerrors'
    ``date``, and the result files' fingerprint, a digest of the prediction files' bytes, which
    hold their time and command): the HDF5 files' datasets and attributes, the JSON records, the
    other files' bytes."""
    import gzip
    found = {}
    for path in sorted(p for name in names for p in [*cfg.root.glob(f"mock_predictions_sigma*/{name}_*"),
                                                     *cfg.path("results").glob(f"{name}_*")]):
        made = ("created", "command") + (("fingerprint",) if path.parent.name == "results" else ())
        if path.suffix == ".hdf5":
            with h5py.File(path, "r") as h5:
                content = {"attrs": {k: str(v) for k, v in h5.attrs.items() if k not in made}}
                h5.visititems(lambda key, obj: content.update({key: obj[()].tobytes()})
                              if isinstance(obj, h5py.Dataset) else None)
        elif path.name.endswith("budget.json"):
            content = json.loads(path.read_text())
            for key in made:
                content["provenance"].pop(key)
        elif path.name.endswith(".json.gz"):
            content = json.loads(gzip.decompress(path.read_bytes()))
            content.pop("date")
        else:
            content = path.read_bytes()
        found[path.name] = content
    return found


def differing(a, b) -> list:
    """The keys (and attributes) in which two contents of outputs_of differ."""
    if not (isinstance(a, dict) and isinstance(b, dict)):
        return []
    return [k for k in a if a[k] != b.get(k)] + [f"attrs/{k}" for k in a.get("attrs", {})
                                                 if a["attrs"][k] != b.get("attrs", {}).get(k)]


def remove_outputs(cfg, names) -> None:
    for name in names:
        for path in [*cfg.root.glob(f"mock_predictions_sigma*/{name}_*"), *cfg.path("results").glob(f"{name}_*")]:
            path.unlink()


def test_a_batch_writes_what_single_calls_write_and_names_a_failing_input(trained, tmp_path, capsys):
    """Two correlator files and a missing one in one call of each script: the two correlators' files
    are those of one call each (to the bit, less the time and command recorded), the missing file
    is named in one line, the others' files are written, and the exit status is 2."""
    cfg, argv = trained, args_of(trained)
    files = [user_correlator_file(tmp_path / f"{name}.h5", cfg.t, seed) for seed, name in enumerate(("bat_a", "bat_b"))]
    names = [path.stem for path in files]
    for path, name in zip(files, names):
        assert predict_on_user_data.main([str(path), "--name", name] + argv) == 0
        assert analyze_user_data.main(["--name", name] + argv) == 0
    single = outputs_of(cfg, names)
    per_name = {name: len([f for f in single if f.startswith(name)]) for name in names}
    n_sigma, n_runs = len(cfg["sigmas_gev"]), len(cfg["ensembles"]) + 1       # the ensembles, the interval nets
    assert per_name == {name: n_sigma * (n_runs + 3 + 4 + 2) for name in names}   # + tables, plots, exports
    remove_outputs(cfg, names)
    missing = tmp_path / "bat_missing.h5"
    capsys.readouterr()
    assert predict_on_user_data.main([str(files[0]), str(missing), str(files[1])] + argv) == 2
    err = capsys.readouterr().err
    assert f"error: {missing}: no such file" in err and f"1 of 3 failed (see above): {missing}" in err
    assert analyze_user_data.main([str(files[0]), str(missing), str(files[1])] + argv) == 2
    assert f"1 of 3 failed (see above): {missing}" in capsys.readouterr().err
    batch = outputs_of(cfg, names)
    assert sorted(batch) == sorted(single)
    for name, content in single.items():
        assert batch[name] == content, (name, differing(content, batch[name]))
    # a correlator whose analysis fails (its prediction files removed) is named too; the other is kept
    for path in cfg.root.glob("mock_predictions_sigma*/bat_b_*"):
        path.unlink()
    assert analyze_user_data.main([str(files[0]), str(files[1]), "--no-plots"] + argv) == 2    # bad input
    err = capsys.readouterr().err
    assert "bat_b: analysis failed" in err and "1 of 2 failed (see above): bat_b" in err


def test_no_plots_writes_the_tables_and_removes_an_earlier_results_plots(trained, tmp_path, capsys):
    """--no-plots: the tables and exports, no PNG; an earlier result's plots are removed when the
    tables are rewritten; a later call with plots draws them again, the same to the bit."""
    cfg, argv = trained, args_of(trained)
    path = user_correlator_file(tmp_path / "plotless.h5", cfg.t, 7)
    assert predict_on_user_data.main([str(path)] + argv) == 0
    results = cfg.path("results")
    assert analyze_user_data.main([str(path), "--no-plots"] + argv) == 0
    assert not list(results.glob("plotless_*.png"))
    for sigma in cfg["sigmas_gev"]:
        for suffix in ("budget.csv", "budget.json", "budget.hdf5", "result.gvar", "result.json.gz"):
            assert cfg.results_file("plotless", sigma, suffix).is_file()
    assert analyze_user_data.main(["--name", "plotless"] + argv) == 0        # the plots were missing
    pictures = {p.name: p.read_bytes() for p in results.glob("plotless_*.png")}
    assert len(pictures) == 4 * len(cfg["sigmas_gev"])
    capsys.readouterr()
    assert analyze_user_data.main([str(path), "--no-plots", "--force"] + argv) == 0
    assert "a plot of the earlier result; --no-plots draws none" in capsys.readouterr().out
    assert not list(results.glob("plotless_*.png"))
    assert analyze_user_data.main([str(path)] + argv) == 0
    assert {p.name: p.read_bytes() for p in results.glob("plotless_*.png")} == pictures
