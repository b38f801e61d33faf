"""The physics core against independent computations (method §1-5).

References: scipy.integrate.quad over ω with the density written as cos(n arccos x) sums
(``chebyshev_basis``), closed forms for one basis function, numpy's Chebyshev module, and the
the method's own hyperbolic form of the thermal kernel.
"""
import numpy as np
import pytest
from numpy.polynomial import chebyshev
from scipy.integrate import quad
from scipy.special import erfc

import sigma_model_utils as smu
from config import load_config
from noise_files import load_noise_file

BREAKS = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)


def quad_over_threshold(f, E0):
    """∫_{E0}^∞ f(ω) dω and ∫ |f| (the scale), by adaptive quadrature on a few sub-intervals."""
    value = scale = 0.0
    edges = [E0 + b for b in BREAKS] + [np.inf]
    for a, b in zip(edges[:-1], edges[1:]):
        value += quad(f, a, b, limit=500, epsabs=0, epsrel=1e-12)[0]
        scale += quad(lambda w: abs(f(w)), a, b, limit=500, epsabs=0, epsrel=1e-9)[0]
    return value, scale


@pytest.mark.parametrize("kind", smu.KERNELS)
@pytest.mark.parametrize("nb", [16, 128, 512])
def test_correlators_and_targets_match_adaptive_quadrature(kind, nb):
    cfg = load_config("reference", [f"kernel={kind}"])
    rng = np.random.default_rng(1000 + nb)
    E0, c = smu.sample_coefficients(rng, 3, nb, cfg)
    correlators, targets = smu.correlators_and_targets(E0, c, cfg)
    i = nb % 3                                   # one sample per case keeps the test fast
    def rho(w):
        return float(smu.chebyshev_basis(w, E0[i], nb)[0] @ c[i])
    for k in (0, 13, cfg.n_t - 1):
        t = cfg.t[k]
        exact, scale = quad_over_threshold(lambda w: smu.kernel(t, w, kind, cfg["T"]) * rho(w), E0[i])
        assert abs(correlators[i, k] - exact) <= 1e-8 * scale, (t, correlators[i, k], exact)
    sigma_gev = cfg["sigmas_gev"][nb % 2]
    for k in (0, 23, len(cfg.energies) - 1):
        E = cfg.energies[k]
        exact, scale = quad_over_threshold(lambda w: smu.gaussian(E - w, cfg.sigma(sigma_gev)) * rho(w), E0[i])
        assert abs(targets[sigma_gev][i, k] - exact) <= 1e-8 * scale, (E, targets[sigma_gev][i, k], exact)


@pytest.mark.parametrize("kind, nb, space", [(kind, 128, []) for kind in smu.KERNELS]
                         + [(kind, 16, ["prior_space.x_scale=2.0"]) for kind in ("laplace", "rratio")])
def test_prior_space_integrals_match_adaptive_quadrature(kind, nb, space):
    """The second space of the prior systematic (method §8): the same 1e-8 contract as method §3, for
    the preset's space (its own E0 range) and for another map scale λ, with x(E) = 1 - 2 e^{-E/λ}
    written out here and T_n(x) from numpy's Chebyshev module."""
    cfg = load_config("reference", [f"kernel={kind}", "prior_systematic=true", *space])
    lam = cfg["prior_space"]["x_scale"]
    E0, c = smu.sample_coefficients(np.random.default_rng(2000 + nb), 2, nb, cfg, "prior")
    assert np.all((E0 >= cfg["prior_space"]["E0_min"]) & (E0 <= cfg["prior_space"]["E0_max"]))
    correlators, targets = smu.correlators_and_targets(E0, c, cfg, space="prior")
    i = nb % 2
    full = np.r_[0.0, c[i]]
    def rho(w):
        if w < E0[i]:
            return 0.0
        return chebyshev.chebval(1 - 2 * np.exp(-w / lam), full) - chebyshev.chebval(1 - 2 * np.exp(-E0[i] / lam), full)
    for k in (0, cfg.n_t - 1):
        t = cfg.t[k]
        exact, scale = quad_over_threshold(lambda w: smu.kernel(t, w, kind, cfg["T"]) * rho(w), E0[i])
        assert abs(correlators[i, k] - exact) <= 1e-8 * scale, (t, correlators[i, k], exact)
    for sigma_gev in cfg["sigmas_gev"]:
        for k in (0, 23, len(cfg.energies) - 1):
            E = cfg.energies[k]
            exact, scale = quad_over_threshold(lambda w: smu.gaussian(E - w, cfg.sigma(sigma_gev)) * rho(w), E0[i])
            assert abs(targets[sigma_gev][i, k] - exact) <= 1e-8 * scale, (E, targets[sigma_gev][i, k], exact)
    if lam != 1.0:   # the same (E0, c) with λ = 1 is another density: the check tells them apart
        wrong, _ = smu.correlators_and_targets(E0, c, cfg)
        assert not np.allclose(wrong, correlators, rtol=1e-6)


def test_single_basis_function_closed_forms():
    """N_b = 1, laplace: ρ = 2(e^{-E0} - e^{-ω}) above E0, so
    C(t) = 2 e^{-(t+1)E0} / (t(t+1)) and
    ρ_σ(E) = e^{-E0} erfc((E0-E)/√2σ) - e^{-E+σ²/2} erfc((E0-E+σ²)/√2σ)."""
    cfg = load_config("reference", ["kernel=laplace"])
    E0 = np.array([0.2, 0.7, 1.3])
    c = np.ones((3, 1))
    correlators, targets = smu.correlators_and_targets(E0, c, cfg)
    t = cfg.t
    expected = 2 * np.exp(-(t + 1) * E0[:, None]) / (t * (t + 1))
    np.testing.assert_allclose(correlators, expected, rtol=1e-12)
    E = cfg.energies
    for sigma_gev in cfg["sigmas_gev"]:
        s = cfg.sigma(sigma_gev)
        e0 = E0[:, None]
        exact = (np.exp(-e0) * erfc((e0 - E) / (np.sqrt(2) * s))
                 - np.exp(-E + s**2 / 2) * erfc((e0 - E + s**2) / (np.sqrt(2) * s)))
        np.testing.assert_allclose(targets[sigma_gev], exact, rtol=1e-11, atol=1e-14)


def test_density_clenshaw_matches_numpy_chebyshev_and_basis():
    cfg = load_config("reference")
    rng = np.random.default_rng(7)
    nb = 512
    E0, c = smu.sample_coefficients(rng, 2, nb, cfg)
    omega = E0[:, None] + np.array([0.0, 1e-3, 0.3, 2.0, 9.0, 40.0])
    rho = smu.chebyshev_density(omega, E0, c)
    for i in range(2):
        full = np.concatenate([[0.0], c[i]])
        by_numpy = chebyshev.chebval(smu.x_of_energy(omega[i]), full) - chebyshev.chebval(smu.x_of_energy(E0[i]), full)
        np.testing.assert_allclose(rho[i], by_numpy, rtol=0, atol=1e-11 * np.abs(c[i]).sum())
        np.testing.assert_allclose(rho[i], smu.chebyshev_basis(omega[i], E0[i], nb) @ c[i],
                                   rtol=0, atol=1e-11 * np.abs(c[i]).sum())
    assert np.all(smu.chebyshev_density(E0[:, None] - 0.1, E0, c) == 0)   # θ(E - E0)


def test_coefficients_follow_spec():
    cfg = load_config("reference")
    E0, c = smu.sample_coefficients(np.random.default_rng(3), 20_000, 8, cfg)
    assert E0.min() >= cfg["E0_min"] and E0.max() <= cfg["E0_max"]
    r = c * np.arange(1, 9) ** (1 + cfg["epsilon"])          # r_n ~ U(-1, 1)
    assert np.abs(r).max() <= 1
    np.testing.assert_allclose(r.var(axis=0), 1 / 3, atol=0.02)
    np.testing.assert_allclose(E0.mean(), (cfg["E0_min"] + cfg["E0_max"]) / 2, atol=0.01)


def test_kernels_match_their_spec_formulas():
    T, t = 64, np.arange(1, 33.0)[:, None]
    w = np.linspace(0.05, 6.0, 50)[None, :]
    np.testing.assert_allclose(smu.kernel(t, w, "laplace", T), np.exp(-t * w), rtol=1e-14)
    periodic = np.exp(-t * w) + np.exp(-(T - t) * w)
    np.testing.assert_allclose(smu.kernel(t, w, "periodic", T), periodic, rtol=1e-14)
    np.testing.assert_allclose(smu.kernel(t, w, "rratio", T), w**2 / (12 * np.pi**2) * periodic, rtol=1e-14)
    thermal = np.cosh(w * (t - T / 2)) / np.sinh(w * T / 2)
    np.testing.assert_allclose(smu.kernel(t, w, "thermal", T), thermal, rtol=1e-12)


def test_gaussian_is_normalised():
    for s in (0.1, 0.44, 0.63):
        assert quad(lambda x: smu.gaussian(x, s), -np.inf, np.inf,
                    epsabs=0, epsrel=1e-12)[0] == pytest.approx(1, rel=1e-12)


def test_noise_has_the_scaled_lattice_covariance(tiny_cfg):
    """C̃ - C = s L z: whitened by s L it is N(0, I); s = C(t_min)/C_latt(t_min)."""
    noise = load_noise_file(tiny_cfg.input_path(tiny_cfg["noise_file"]), tiny_cfg)
    E0, c = smu.sample_coefficients(np.random.default_rng(5), 2, 16, tiny_cfg)
    clean, _ = smu.correlators_and_targets(E0, c, tiny_cfg)
    n = 20_000
    noisy = smu.add_noise(clean, noise, np.random.default_rng(6), n)
    s = clean[:, 0] / noise.mean[0]
    np.testing.assert_allclose(smu.noise_scale(clean, noise), s)
    for i in range(2):
        white = np.linalg.solve(noise.chol, ((noisy[i] - clean[i]) / s[i]).T).T
        cov = np.cov(white, rowvar=False)
        # each element of a sample covariance of N(0, I) has standard error ≤ √(2/n)
        assert np.abs(cov - np.eye(tiny_cfg.n_t)).max() < 5 * np.sqrt(2 / n)
        assert np.abs(white.mean(axis=0)).max() < 5 / np.sqrt(n)
        # the relative error at t_min is that of the lattice data (method §4)
        rel = noisy[i, :, 0].std() / abs(clean[i, 0])
        assert rel == pytest.approx(np.sqrt(noise.cov[0, 0]) / abs(noise.mean[0]), rel=5 * np.sqrt(1 / (2 * n)))


def test_standardise():
    rng = np.random.default_rng(2)
    x = rng.normal(3.0, 2.0, size=(1000, 4))
    mu, gamma = x.mean(axis=0), x.std(axis=0)
    z = smu.standardise(x, mu, gamma)
    assert z.dtype == np.float32
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-6)
    np.testing.assert_allclose(z.std(axis=0), 1, rtol=1e-5)
