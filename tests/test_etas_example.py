"""The two-state fit of run_etas_example.py: it recovers known parameters, and its linearised
error on ρ_σ(E) agrees with the spread of refits of resampled data."""
import numpy as np

from run_etas_example import fit_density, two_state_fit
from sigma_model_utils import kernel

T = 64
THETA = np.array([0.048, 0.416, 0.075, 1.14])      # A_0, E_0, A_1, E_1 (HPQCD η_s-like)


def exact(t):
    return THETA[0] * kernel(t, THETA[1], "periodic", T) + THETA[2] * kernel(t, THETA[3], "periodic", T)


def covariance(t):
    sd = 3e-4 * exact(t) * np.exp(0.02 * t)
    return 0.8 ** np.abs(t[:, None] - t[None, :]) * np.outer(sd, sd)


def test_fit_recovers_exact_parameters():
    t = np.arange(5, 33)
    theta, cov_theta, chi2, dof = two_state_fit(exact(t), covariance(t), t, T)
    np.testing.assert_allclose(theta, THETA, rtol=1e-7)
    assert chi2 < 1e-10 and dof == len(t) - 4
    assert np.all(np.linalg.eigvalsh(cov_theta) > 0)


def test_linearised_density_error_matches_refits():
    t = np.arange(5, 33)
    cov = covariance(t)
    energies = np.linspace(0.1, 2.5, 13)
    theta, cov_theta, _, _ = two_state_fit(exact(t), cov, t, T)
    rho, err = fit_density(theta, cov_theta, energies, 0.44)
    from sigma_model_utils import gaussian
    np.testing.assert_allclose(rho, THETA[0] * gaussian(energies - THETA[1], 0.44)
                               + THETA[2] * gaussian(energies - THETA[3], 0.44), rtol=1e-6)
    rng = np.random.default_rng(4)
    L = np.linalg.cholesky(cov)
    refits = [fit_density(two_state_fit(exact(t) + L @ rng.standard_normal(len(t)), cov, t, T)[0],
                          cov_theta, energies, 0.44)[0] for _ in range(200)]
    spread = np.std(refits, axis=0, ddof=1)
    np.testing.assert_allclose(err, spread, rtol=0.25)      # 200 refits: the std is known to ~5 %
