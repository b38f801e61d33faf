"""The peers (peers.py, hlt.py) by independent routes: the grid's rule against adaptive quadrature,
the GP posterior against the linear-Gaussian closed form, MEM and NN-P2P on one smooth peak from
exact data, the same output checks for every method, and the scoring of benchmarks/compare_methods.py
flagging a method whose errors are a quarter of the honest ones."""
from pathlib import Path

import numpy as np
import pytest
from conftest import need
from scipy import integrate, special, stats

import mocks
import peers
import validation as val
from config import load_config
from noise_files import load_noise_file
from sigma_model_utils import add_noise, gaussian, kernel

REPO = Path(__file__).resolve().parents[1]
PEAK = {"A": 1.0, "M": 1.2, "w": 0.15}      # one smooth Gaussian peak, inside the energy grid


@pytest.fixture
def cfg(tmp_path):
    return load_config("tiny", [f"noise_file={REPO / 'data' / 'standin_baryon_T64.h5'}"], tmp_path)


def peak(omega):
    return val.gauss_peaks(omega, [PEAK["A"]], [PEAK["M"]], [PEAK["w"]], 0.0, 5.0)


def peak_problem(cfg, sigma_gev=0.44, n=64):
    """Samples of the peak's exact correlator (adaptive quadrature, independent of the grid) with the
    stand-in file's noise (method §4), centred exactly on it (their mean moved onto the exact C):
    exact data with a lattice covariance."""
    points = [PEAK["M"] - 3 * PEAK["w"], PEAK["M"], PEAK["M"] + 3 * PEAK["w"]]
    exact = mocks.correlator_of(peak, cfg, 0.0, points)
    noise = load_noise_file(cfg.input_path(cfg["noise_file"]), cfg)
    samples = add_noise(exact[None, :], noise, np.random.default_rng(1), n)[0]
    samples += exact - samples.mean(axis=0)
    truth = mocks.smeared_of(peak, cfg, sigma_gev, 0.0, points)
    return peers.problem(cfg, samples, sigma_gev), truth


def test_grid_rule_against_adaptive_quadrature(cfg):
    """Simpson's rule of the grid: ∫ G_σ(E - ω) ρ and ∫ b(t, ω) ρ of a smooth peak equal the truths'
    adaptive quadrature; its weights integrate polynomials of degree 3 exactly."""
    g = peers.grid()
    assert g.weights @ g.omega**3 == pytest.approx(peers.OMEGA_MAX**4 / 4, rel=1e-12)
    p, _ = peak_problem(cfg)
    points = [PEAK["M"] - 3 * PEAK["w"], PEAK["M"], PEAK["M"] + 3 * PEAK["w"]]
    np.testing.assert_allclose(peers.forward_matrix(p, g) @ peak(g.omega), mocks.correlator_of(peak, cfg, 0.0, points),
                               rtol=1e-6)
    for s in cfg["sigmas_gev"]:
        smeared = peers.smearing_matrix(cfg.energies, cfg.sigma(s), g) @ peak(g.omega)
        exact = PEAK["A"] * gaussian(cfg.energies - PEAK["M"], np.hypot(cfg.sigma(s), PEAK["w"]))
        assert np.max(np.abs(smeared - exact)) < 1e-6 * exact.max()


def test_whitening_makes_the_covariance_the_identity(cfg):
    p, _ = peak_problem(cfg)
    W = peers.whitening(p.covariance)
    np.testing.assert_allclose(W @ p.covariance @ W.T, np.eye(cfg.n_t), atol=1e-8)
    with pytest.raises(ValueError, match="more bootstrap samples than slices"):
        peers.whitening(np.ones((3, 3)))


def test_gp_posterior_is_the_linear_gaussian_closed_form(cfg):
    """fredipy's posterior of ρ on the grid, at fixed (s, ℓ), against μ = K Aᵀ (A K Aᵀ + 1)⁻¹ y and
    C = K - K Aᵀ (A K Aᵀ + 1)⁻¹ A K (A the whitened forward map, y the whitened data), written here
    in numpy; its log-likelihood against scipy's multivariate normal of y; and ρ_σ's mean and
    covariance are M μ and M C Mᵀ."""
    need("fredipy")
    p, _ = peak_problem(cfg)
    g = peers.grid()
    s, ell = 0.7, 0.3
    mu, cov, params, loglik = peers.gp_posterior(p, s, ell)
    assert params == (s, ell)
    W = peers.whitening(p.covariance)
    A = W @ kernel(p.t[:, None], g.omega[None, :], p.kind, p.T) * g.weights
    K = s**2 * np.exp(-0.5 * (g.omega[:, None] - g.omega[None, :]) ** 2 / ell**2)
    y = W @ p.data
    gram = A @ K @ A.T + np.eye(len(y))
    gain = np.linalg.solve(gram, A @ K).T
    np.testing.assert_allclose(mu, gain @ y, atol=1e-6 * np.abs(gain @ y).max())
    np.testing.assert_allclose(cov, K - gain @ A @ K, atol=1e-6 * s**2)
    assert loglik == pytest.approx(stats.multivariate_normal(np.zeros(len(y)), gram).logpdf(y), rel=1e-8)
    # the posterior of the data reproduces them within their errors, and ρ_σ is the linear map of ρ
    assert np.sum((A @ mu - y) ** 2) < 3 * len(y)


def test_mem_recovers_one_smooth_peak_from_exact_data(cfg, monkeypatch):
    """MEM on exact data of one smooth peak: ρ_σ within 5 % of the peak's height at every energy
    (σ = 0.44), through peers.solve (the same shape and NaN checks as every method)."""
    monkeypatch.setattr(peers, "BOOTSTRAP_FITS", 3)
    p, truth = peak_problem(cfg)
    r = peers.solve("mem", p)
    assert np.max(np.abs(r.central - truth)) < 0.05 * truth.max()
    assert r.covariance is not None and r.seconds > 0


def test_mem_bryan_on_a_closed_form_case():
    """Bryan's MEM where the answer is known: with a kernel of one row (y = Σ f) and very small data
    errors the result's area equals the datum, and with a flat default it stays flat (the entropy
    chooses the most uniform f of that area)."""
    K = np.ones((1, 50)) * 1e4               # whitened: the datum has error 1e-4 of its value 1
    m = np.full(50, 0.5 / 50)                # a flat default of area 0.5
    f, found = peers.bryan(K, np.array([1e4]), m)
    assert f.sum() == pytest.approx(1.0, rel=1e-3)
    np.testing.assert_allclose(f, f.mean(), rtol=1e-9)
    assert found["singular_values"] == 1


def test_nn_p2p_recovers_one_smooth_peak_from_exact_data(cfg):
    """NN-P2P (its stated settings, in its unit of ρ) fitted to the exact data of one smooth peak: ρ_σ
    within 5 % of the peak's height; one network (the centre's)."""
    need("torch")
    p, truth = peak_problem(cfg)
    g = peers.grid()
    rho = peers.nn_p2p_rho(p, p.data[None, :])
    assert rho.shape == (1, len(g.omega)) and np.all(rho > 0)
    smeared = peers.smearing_matrix(p.energies, p.sigma, g) @ rho[0]
    assert np.max(np.abs(smeared - truth)) < 0.05 * truth.max()


def test_the_output_checks_catch_broken_results():
    """Result.check (run on every method's answer by peers.solve and peers.Audience) refuses the wrong
    shape, NaN, non-positive errors and a covariance whose diagonal is not the error squared."""
    good = peers.Result(np.ones(4), np.full(4, 0.1), np.eye(4) * 0.01)
    assert good.check(4, "x") is good
    for broken in (peers.Result(np.ones(3), np.full(4, 0.1)), peers.Result(np.array([1, np.nan, 1, 1.0]),
                                                                           np.full(4, 0.1)),
                   peers.Result(np.ones(4), np.zeros(4)), peers.Result(np.ones(4), np.full(4, 0.1), np.eye(4))):
        with pytest.raises(ValueError):
            broken.check(4, "x")


def test_the_scoring_flags_errors_a_quarter_of_the_honest_ones():
    """An oracle method (truth + Gaussian noise of its stated error, per density, measurement and
    energy) is judged honest by compare_methods.score; the same with its errors divided by 4 is
    flagged, with the coverage and mean |pull| that Gaussian integrals predict."""
    from compare_methods import score
    rng = np.random.default_rng(7)
    n, meas, n_e = 60, 2, 47
    truth = np.repeat(rng.uniform(0.5, 1.5, (n, n_e)), meas, axis=0)
    error = np.full_like(truth, 0.05)
    central = truth + error * rng.standard_normal(truth.shape)
    groups = np.repeat(np.arange(n), meas)
    covs = [np.eye(n_e) * 0.05**2] * len(truth)
    honest = score(central, truth, error, groups, covs)
    assert honest["verdict"] == "honest"
    assert honest["chi2_per_dof"] == pytest.approx(1.0, abs=0.05)
    quarter = score(central, truth, error / 4, groups, [c / 16 for c in covs])
    assert quarter["verdict"].startswith("errors too small")
    assert quarter["coverage"] == pytest.approx(special.erf(0.25 / np.sqrt(2)), abs=0.02)
    assert quarter["mean_abs_pull"] == pytest.approx(4 * np.sqrt(2 / np.pi), rel=0.03)
    assert quarter["chi2_per_dof"] == pytest.approx(16.0, rel=0.05)
    assert quarter["crps"] > honest["crps"]


def test_hlt_target_integrals_reproduce_lsdensities_closed_forms():
    """hlt's quadratures of lsdensities' target integrals, with weight w = 1, equal its own closed
    forms (f_t and A0 of the FULLNORMGAUSS target); with the rratio weight they are those of
    w(ω) = 12π²/ω² (checked at one point against a direct quadrature of the formula)."""
    need("lsdensities")
    import lsdensities.core as lcore
    from mpmath import mp, mpf

    from hlt import target_weight, weighted_a0, weighted_ft
    mp.dps = 30
    sigma, e0, T = 0.44, 0.2, 64
    for e in (0.3, 1.2, 2.5):
        for t in (1, 7, 32):
            for alpha in (0.0, 0.5):
                for kind in ("EXP", "COSH"):
                    ours = weighted_ft(None, e, t, sigma, alpha, e0, kind, T)
                    theirs = lcore.ft_mp(mpf(e), mpf(t), mpf(sigma), mpf(alpha), mpf(e0), kind, T)
                    assert abs(ours - theirs) <= 1e-10 * abs(theirs)
        ours = weighted_a0(None, e, sigma, 0.5, e0)
        theirs = lcore.A0_mp(mpf(e), mpf(sigma), mpf(0.5), mpf(e0))
        assert abs(ours - theirs) <= 1e-10 * abs(theirs)
    w = target_weight("rratio", T)
    assert w(0.5) == pytest.approx(12 * np.pi**2 / 0.25, rel=1e-12)
    assert target_weight("periodic", T) is None
    direct = integrate.quad(lambda x: np.exp(-3 * x) * (1 + np.exp(-58 * x)) * 12 * np.pi**2 / x**2
                            * gaussian(1.0 - x, sigma), e0, 30, epsrel=1e-12, points=[1.0])[0]
    assert float(weighted_ft(w, 1.0, 3, sigma, 0.0, e0, "COSH", T)) == pytest.approx(direct, rel=1e-9)


def test_hlt_through_the_interface(cfg):
    """HLT at one energy of the peak's exact data: the interface's checks pass, its errors are
    positive and it finds the peak's smeared density within 10 % of its height."""
    need("lsdensities")
    p, truth = peak_problem(cfg)
    pick = np.array([16])
    r = peers.solve("hlt", peers.problem(cfg, p.samples, 0.44, pick))
    assert np.max(np.abs(r.central - truth[pick])) < 0.1 * truth.max()
    assert set(r.details) == {"stat", "sys", "lambda", "A_over_A0"}
