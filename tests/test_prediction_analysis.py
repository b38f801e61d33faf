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
import predict_on_delta_tanh
import predict_on_O3_mock_sigma
import predict_on_user_data
import run_pipeline
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
                                           "central_calibrated_paper", "post_paper", "total_calibrated_paper",
                                           "total_scaled", "truth", "closure_level"]
            # the calibrated result as calibration.py defines it, from the calibration file and the
            # interval networks' predictions
            cal = read_calibration(cfg, sigma)
            with h5py.File(cfg.prediction_file(mock, "Nmax_interval", sigma), "r") as h5:
                q = h5["predictions"][()].astype(np.float64)
            width = (np.abs(q[..., 2 * n_e:] - q[..., :n_e]) / 2).mean(axis=(0, 1))
            np.testing.assert_allclose(table["central_calibrated"], q[..., n_e:2 * n_e].mean(axis=(0, 1)), rtol=1e-6)
            np.testing.assert_allclose(table["post"], cal.Q["median"] * width, rtol=1e-6)
            np.testing.assert_allclose(table["total_calibrated"], table["post"], rtol=1e-12)
            np.testing.assert_array_equal(table["central_calibrated_paper"], table["central"])
            np.testing.assert_allclose(table["post_paper"], cal.Q["paper"] * width, rtol=1e-6)
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
                                       "sys_prior", "total_with_prior", *budget_columns("calibrated")[8:],
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
    with pytest.raises(SystemExit, match="analysis failed"):                # made with 10, analysed with 40
        analyze_user_data.main(["--name", "myten10"] + argv)
    assert "key 'n_boot': the predictions were made with n_boot=10, the settings say 40" in capsys.readouterr().out
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
        with pytest.raises(SystemExit, match="analysis failed"):
            analyze_O3_mock_sigma.main(args_of(cfg) + ["--set", override])
        out = capsys.readouterr().out
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
    with pytest.raises(SystemExit, match=f"failed for sigma = \\[{cfg['sigmas_gev'][0]}\\]"):
        analysis.analyze(cfg, "delta_tanh")
    out = capsys.readouterr().out
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
    for centre in made.Q:                                # the same streams: the same factors
        np.testing.assert_array_equal(again.Q[centre], made.Q[centre])
    np.testing.assert_array_equal(again.S, made.S)
    assert again.checkpoints == made.checkpoints and len(made.checkpoints) == 5 * cfg["n_replicas"]
