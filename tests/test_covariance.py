"""Correlations between energies: the result's covariance, its χ² closure statistic, and the
gvar / pyerrors files written and read back by the libraries themselves."""
import warnings

import numpy as np
import pytest
from scipy import stats

import budget as bud
import covariance as cv
import exports

N_BOOT, N_R, N_E = 300, 5, 9
E = np.linspace(0.1, 2.5, N_E)


def rng(seed=0):
    return np.random.default_rng(seed)


def smooth_noise(generator, shape, scale=0.1):
    """Noise correlated along the last (energy) axis, as smearing makes it."""
    white = generator.normal(size=shape + (N_E,))
    kernel = np.exp(-((E[:, None] - E[None, :]) ** 2) / (2 * 0.4**2))
    return scale * white @ kernel


def audience(prior=False):
    g = rng(1)
    base = 1.0 + np.sin(E) + smooth_noise(g, (N_BOOT, 1)) + smooth_noise(g, (1, N_R), 0.05)
    preds = {"Nmax": base,
             "Nref_b": base + 0.3 * np.cos(E) + smooth_noise(g, (N_BOOT, N_R), 0.01),
             "Nref_rho": base - 0.2 + smooth_noise(g, (N_BOOT, N_R), 0.01),
             "Nref_n": base + smooth_noise(g, (1, N_R), 0.05)}
    if prior:
        preds["Nref_prior"] = base + 0.1 * E + smooth_noise(g, (N_BOOT, N_R), 0.01)
    return preds


@pytest.mark.parametrize("kind", bud.SAMPLE_KINDS)
@pytest.mark.parametrize("prior", [False, True])
def test_diagonal_is_the_square_of_the_reported_errors(kind, prior):
    preds = audience(prior)
    b = bud.error_budget(preds, kind)
    covs = cv.result_covariances(preds, b, kind)
    for name in (*bud.COMPONENTS, "total"):
        np.testing.assert_allclose(np.diag(covs[name]), b.component(name) ** 2, rtol=1e-10, atol=1e-15)
    if prior:
        np.testing.assert_allclose(np.diag(covs["total_with_prior"]), b.total_with_prior**2, rtol=1e-10)
    else:
        assert "total_with_prior" not in covs
    np.testing.assert_allclose(covs["total"], covs["total"].T, rtol=0, atol=1e-15)
    assert np.linalg.eigvalsh(covs["total"]).min() > -1e-12 * np.abs(covs["total"]).max()


def test_a_systematic_is_fully_correlated_with_its_sign():
    """Nref_b = Nmax + Δ with a known Δ that changes sign and no noise of its own: Σ_b = |Δ|
    and no replica spread (σ_Δ = 0), and the term is s sᵀ with s = Δ itself."""
    base = np.broadcast_to(1.0 + smooth_noise(rng(2), (N_BOOT, 1)), (N_BOOT, N_R, N_E))
    preds = {name: base for name in ("Nmax", "Nref_rho", "Nref_n")}
    delta = np.linspace(-0.5, 0.5, N_E) + 0.05              # no zero: every sign is defined
    preds["Nref_b"] = preds["Nmax"] - delta                  # Δ_b = ρ̄_Nmax - ρ̄_Nref_b = delta
    b = bud.error_budget(preds)
    np.testing.assert_allclose(b.sys_b, np.abs(delta), rtol=1e-10)
    term = cv.result_covariances(preds, b)["sys_b"]
    np.testing.assert_allclose(term, np.outer(delta, delta), rtol=1e-10)
    assert term[0, -1] < 0 and term[0, 1] > 0                # opposite signs anti-correlate
    np.testing.assert_allclose(cv.correlation(term)[0, -1], -1.0, rtol=1e-12)


def test_missing_ensemble_makes_the_total_nan_not_zero():
    preds = audience()
    preds["Nref_n"] = None
    b = bud.error_budget(preds)
    covs = cv.result_covariances(preds, b)
    assert np.all(np.isnan(covs["sys_n"])) and np.all(np.isnan(covs["total"]))
    assert np.all(np.isfinite(covs["stat"]))


def test_stat_covariance_matches_numpy_and_the_jackknife_rule():
    x = smooth_noise(rng(3), (50,))
    np.testing.assert_allclose(cv.sample_covariance(x), np.cov(x.T, ddof=1), rtol=1e-12)
    n = len(x)
    np.testing.assert_allclose(cv.sample_covariance(x, "jackknife"), (n - 1) * np.cov(x.T, ddof=0), rtol=1e-12)
    with pytest.raises(ValueError, match="sample kind"):
        cv.sample_covariance(x, "other")


def low_rank_covariance(rank=5, seed=4):
    a = rng(seed).normal(size=(N_E, rank)) * np.linspace(1, 0.1, rank)
    return 1e-2 * a @ a.T + 1e-10 * np.eye(N_E)


def test_chi2_follows_its_law_and_flags_a_wrong_covariance():
    """Deviations drawn from N(0, Cov) give χ² ~ χ²(k) with the eigenvalue cut; the same
    deviations judged with Cov/4 (errors half as large) give χ²/k ≈ 4 and fail the test."""
    cov = low_rank_covariance()
    draws = rng(5).multivariate_normal(np.zeros(N_E), cov, size=2000)
    values, ks = zip(*(cv.chi2(d, 0.0, cov) for d in draws))
    k = ks[0]
    assert set(ks) == {k} and k == 5           # the cut keeps exactly the 5 real directions
    assert stats.kstest(values, stats.chi2(k).cdf).pvalue > 1e-3
    wrong = [cv.chi2(d, 0.0, cov / 4)[0] for d in draws[:200]]
    assert abs(np.mean(wrong) / k - 4) < 0.5
    assert stats.kstest(wrong, stats.chi2(k).cdf).pvalue < 1e-6
    assert np.isnan(cv.chi2(draws[0], 0.0, np.full((N_E, N_E), np.nan))[0])


def test_calibrated_covariance_is_d_r_d():
    post = np.linspace(1, 2, N_E)
    truth = rng(6).normal(size=(400, N_E))
    centre = truth + smooth_noise(rng(7), (400,))
    R = cv.score_correlation(centre, truth, 1.0)
    np.testing.assert_allclose(np.diag(R), 1.0, rtol=1e-12)
    cov = cv.calibrated_covariance(post, R)
    np.testing.assert_allclose(np.diag(cov), post**2, rtol=1e-12)
    np.testing.assert_allclose(cv.correlation(cov), R, rtol=1e-10)


@pytest.fixture
def result():
    preds = audience(prior=True)
    b = bud.error_budget(preds)
    return b.central, cv.result_covariances(preds, b)["total"]


def test_gvar_file_round_trip_and_a_weighted_integral(result, tmp_path):
    gvar = pytest.importorskip("gvar")
    central, cov = result
    path = exports.write_gvar(tmp_path / "r.gvar", central, {"total": cov, "half": cov / 4})
    loaded = exports.load_gvar(path)
    assert set(loaded) == {"total", "half"}
    np.testing.assert_allclose(gvar.sdev(loaded["half"]), np.sqrt(np.diag(cov)) / 2, rtol=1e-10)
    g = loaded["total"]
    np.testing.assert_allclose(gvar.mean(g), central, rtol=1e-14)
    np.testing.assert_allclose(gvar.sdev(g), np.sqrt(np.diag(cov)), rtol=1e-10)
    np.testing.assert_allclose(gvar.evalcorr(g)[1, 4], cv.correlation(cov)[1, 4], rtol=1e-8)
    # ∫ dE w(E) ρ_σ(E) by the trapezoid rule: its error is sqrt(wᵀ Cov w), correlations included
    w = np.full(N_E, E[1] - E[0])
    w[[0, -1]] /= 2
    integral = np.sum(w * g)
    np.testing.assert_allclose(integral.mean, w @ central, rtol=1e-12)
    np.testing.assert_allclose(integral.sdev, np.sqrt(w @ cov @ w), rtol=1e-8)
    assert integral.sdev > 1.2 * np.sqrt(w**2 @ np.diag(cov))     # the correlations matter here


def test_pyerrors_file_round_trip(result, tmp_path):
    pyerrors = pytest.importorskip("pyerrors")
    central, cov = result
    path = exports.write_pyerrors(tmp_path / "r.json.gz", central, {"total": cov}, "test result")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json.gz"]        # no temporary left
    obs = exports.load_pyerrors(path)["total"]
    np.testing.assert_allclose([o.value for o in obs], central, rtol=1e-14)
    np.testing.assert_allclose([o.dvalue for o in obs], np.sqrt(np.diag(cov)), rtol=1e-8)
    with warnings.catch_warnings():      # pyerrors warns of round-off eigenvalues below zero
        warnings.simplefilter("ignore", RuntimeWarning)
        reloaded = pyerrors.covariance(obs)
    np.testing.assert_allclose(reloaded[1, 4], cov[1, 4], rtol=1e-8)


def elementwise_obs(pyerrors, central, cov, name):
    """The reference route: ρ_i = c_i + Σ_j V_ij z_j summed one derived observable at a time."""
    values, vectors = np.linalg.eigh(cov)
    z = np.array(pyerrors.cov_Obs([0.0] * len(values), np.diag(np.clip(values, 0.0, None)), name), dtype=object)
    return [c + vectors[i] @ z for i, c in enumerate(central)]


def test_pyerrors_obs_in_one_step_equal_the_elementwise_sums(result):
    """exports.pyerrors_obs (one derived_observable, Jacobian V) gives the values, errors and
    correlations of the elementwise construction; also for a rank-deficient covariance whose
    round-off eigenvalues fall below zero."""
    pyerrors = pytest.importorskip("pyerrors")
    g = rng(11)
    A = g.normal(size=(20, 4))
    singular = (A @ A.T) * 1e-4                      # rank 4 of 20
    assert np.linalg.eigvalsh(singular).min() < 0    # round-off: clipped by both routes
    for central, cov in (result, (g.normal(size=20), singular)):
        fast = exports.pyerrors_obs(central, cov, "rho_sigma_total")
        slow = elementwise_obs(pyerrors, central, cov, "rho_sigma_total")
        for o in (*fast, *slow):
            o.gamma_method()
        assert len(fast) == len(central) and all(isinstance(o, pyerrors.Obs) for o in fast)
        np.testing.assert_array_equal([o.value for o in fast], central)
        np.testing.assert_allclose([o.dvalue for o in fast], [o.dvalue for o in slow], rtol=0, atol=1e-10)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            c_fast, c_slow = pyerrors.covariance(list(fast)), pyerrors.covariance(slow)
        np.testing.assert_allclose(cv.correlation(c_fast), cv.correlation(c_slow), rtol=0, atol=1e-10)
        np.testing.assert_allclose(c_fast, cov, rtol=0, atol=1e-12 * np.abs(cov).max())


def test_an_incomplete_covariance_is_not_exported(tmp_path):
    central = np.zeros(N_E)
    with pytest.raises(ValueError, match="incomplete"):
        exports.write_gvar(tmp_path / "r.gvar", central, {"total": np.full((N_E, N_E), np.nan)})
    assert not (tmp_path / "r.gvar").exists()
