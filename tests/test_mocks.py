"""The validation mocks (method §9) against independent evaluations: closed forms and a different
quadrature (Gauss-Legendre in the O(3) rapidity u = arccosh(ω/E_th), with the density written
in u), for every kernel."""
import h5py
import numpy as np
import pytest
from scipy.special import ndtr

from config import load_config
from mocks import delta_tanh_mock, make_mock, o3_density, write_mock_file
from noise_files import load_noise_file
from sigma_model_utils import gaussian, kernel

KERNELS = ("laplace", "periodic", "rratio", "thermal")


def cfg_with(tiny_cfg, *overrides):
    return load_config("tiny", tiny_cfg.overrides + list(overrides), tiny_cfg.root)


def gauss_legendre(a, b, n_panels, n_nodes):
    z, w = np.polynomial.legendre.leggauss(n_nodes)
    edges = np.linspace(a, b, n_panels + 1)
    nodes = np.concatenate([lo + 0.5 * (hi - lo) * (z + 1) for lo, hi in zip(edges[:-1], edges[1:])])
    weights = np.concatenate([0.5 * (hi - lo) * w for lo, hi in zip(edges[:-1], edges[1:])])
    return nodes, weights


def o3_in_rapidity(u):
    """ρ written in u = θ/2 (θ = 2u): 3π³/(16u²) (4u² + π²)/(4u² + 4π²) tanh³(u)."""
    return 3 * np.pi**3 / (16 * u**2) * (4 * u**2 + np.pi**2) / (4 * u**2 + 4 * np.pi**2) * np.tanh(u) ** 3


def test_o3_density_formula():
    e_th = 1.3
    omega = np.array([0.5, 1.3, 1.31, 2.0, 10.0])
    rho = o3_density(omega, e_th)
    assert rho[0] == 0 and rho[1] == 0 and np.all(rho[2:] > 0)
    u = np.arccosh(omega[2:] / e_th)
    np.testing.assert_allclose(rho[2:], o3_in_rapidity(u), rtol=1e-13)


@pytest.mark.parametrize("kind", KERNELS)
def test_o3_correlator_against_rapidity_quadrature(tiny_cfg, kind):
    cfg = cfg_with(tiny_cfg, f"kernel={kind}", "o3_threshold=0.9")
    mock = make_mock("O3", cfg)
    e_th = 0.9
    u, w = gauss_legendre(0.0, np.arccosh(80.0 / e_th), 40, 40)   # ω up to 80: e^{-80} tail
    omega = e_th * np.cosh(u)
    jacobian = e_th * np.sinh(u)
    b = kernel(cfg.t[:, None], omega[None, :], kind, cfg["T"])
    reference = b @ (w * jacobian * o3_in_rapidity(u))
    np.testing.assert_allclose(mock.correlator, reference, rtol=1e-8)


def test_o3_smeared_against_rapidity_quadrature(tiny_cfg):
    cfg = cfg_with(tiny_cfg, "o3_threshold=0.9")
    mock = make_mock("O3", cfg)
    u, w = gauss_legendre(0.0, np.arccosh(12.0 / 0.9), 60, 40)
    omega = 0.9 * np.cosh(u)
    weighted = w * 0.9 * np.sinh(u) * o3_in_rapidity(u)
    for sigma_gev in cfg["sigmas_gev"]:
        g = gaussian(cfg.energies[:, None] - omega[None, :], cfg.sigma(sigma_gev))
        reference = g @ weighted
        scale = np.abs(reference).max()
        np.testing.assert_allclose(mock.truth[sigma_gev], reference, rtol=0, atol=1e-8 * scale)


@pytest.mark.parametrize("kind", KERNELS)
def test_delta_alone_is_closed_form(tiny_cfg, kind):
    """With B = 0 the mock is A δ(ω - M): C(t) = A b(t, M), ρ_σ(E) = A G_σ(E - M) exactly."""
    cfg = cfg_with(tiny_cfg, f"kernel={kind}", "delta_B=0", "delta_A=1.5", "delta_M=0.8")
    mock = delta_tanh_mock(cfg)
    np.testing.assert_allclose(mock.correlator, 1.5 * kernel(cfg.t, 0.8, kind, cfg["T"]), rtol=1e-14)
    for sigma_gev in cfg["sigmas_gev"]:
        s = cfg.sigma(sigma_gev)
        closed = 1.5 * np.exp(-((cfg.energies - 0.8) ** 2) / (2 * s**2)) / (np.sqrt(2 * np.pi) * s)
        np.testing.assert_allclose(mock.truth[sigma_gev], closed, rtol=1e-13)


def test_sharp_continuum_is_a_step(tiny_cfg):
    """w -> 0: the continuum is B θ(ω - E_c): laplace C(t) = A e^{-tM} + B e^{-t E_c}/t and
    ρ_σ(E) = A G_σ(E - M) + B Φ((E - E_c)/σ); the smoothing changes them by O((t w)², (w/σ)²)."""
    A, M, B, Ec, w = 1.5, 0.8, 0.5, 1.6, 1e-4
    cfg = cfg_with(tiny_cfg, "kernel=laplace", f"delta_A={A}", f"delta_M={M}", f"delta_B={B}",
                   f"delta_Ec={Ec}", f"delta_w={w}")
    mock = delta_tanh_mock(cfg)
    t = cfg.t
    np.testing.assert_allclose(mock.correlator, A * np.exp(-t * M) + B * np.exp(-t * Ec) / t, rtol=1e-5)
    for sigma_gev in cfg["sigmas_gev"]:
        s = cfg.sigma(sigma_gev)
        closed = A * gaussian(cfg.energies - M, s) + B * ndtr((cfg.energies - Ec) / s)
        np.testing.assert_allclose(mock.truth[sigma_gev], closed, rtol=0, atol=1e-7)


def test_reference_continuum_against_gauss_legendre(tiny_cfg):
    """The reference continuum (w = 0.2) by a fixed dense Gauss-Legendre rule instead of QUADPACK."""
    cfg = cfg_with(tiny_cfg, "kernel=rratio")
    mock = make_mock("delta_tanh", cfg)
    A, M, B, Ec, w = (cfg[k] for k in ("delta_A", "delta_M", "delta_B", "delta_Ec", "delta_w"))
    omega, weights = gauss_legendre(0.0, 80.0, 400, 30)
    cont = weights * B * 0.5 * (1 + np.tanh((omega - Ec) / w))
    b = kernel(cfg.t[:, None], omega[None, :], "rratio", cfg["T"])
    np.testing.assert_allclose(mock.correlator, A * kernel(cfg.t, M, "rratio", cfg["T"]) + b @ cont, rtol=1e-8)
    for sigma_gev in cfg["sigmas_gev"]:
        s = cfg.sigma(sigma_gev)
        reference = A * gaussian(cfg.energies - M, s) + gaussian(cfg.energies[:, None] - omega[None, :], s) @ cont
        np.testing.assert_allclose(mock.truth[sigma_gev], reference, rtol=1e-9)


def test_thermal_delta_tanh_refused(tiny_cfg):
    cfg = cfg_with(tiny_cfg, "kernel=thermal")
    with pytest.raises(ValueError, match="diverges with the thermal kernel"):
        make_mock("delta_tanh", cfg)


def test_bad_mock_parameters(tiny_cfg):
    with pytest.raises(ValueError, match="unknown mock 'O4'"):
        make_mock("O4", tiny_cfg)
    with pytest.raises(ValueError, match="o3_threshold=-1.0"):
        make_mock("O3", cfg_with(tiny_cfg, "o3_threshold=-1"))
    with pytest.raises(ValueError, match="delta_w=0.0"):
        make_mock("delta_tanh", cfg_with(tiny_cfg, "delta_w=0"))


def test_mock_file(tiny_cfg):
    noise = load_noise_file(tiny_cfg.input_path(tiny_cfg["noise_file"]), tiny_cfg)
    mock = make_mock("delta_tanh", tiny_cfg)
    path = tiny_cfg.mock_file("delta_tanh")
    write_mock_file(tiny_cfg, mock, noise, path)
    s = mock.correlator[0] / noise.mean[0]
    with h5py.File(path, "r") as h5:
        np.testing.assert_array_equal(h5["mean"][()], mock.correlator)
        np.testing.assert_allclose(h5["cov"][()], s**2 * noise.cov, rtol=1e-15)
        np.testing.assert_array_equal(h5["t"][()], tiny_cfg.t)
        for sigma_gev in tiny_cfg["sigmas_gev"]:
            np.testing.assert_array_equal(h5[f"true_smeared_rho_sigma_{sigma_gev}"][()], mock.truth[sigma_gev])
        assert h5.attrs["kernel"] == tiny_cfg["kernel"] and "code_version" in h5.attrs
    # the relative error at t_min is that of the lattice data (method §4)
    rel_mock = np.sqrt(s**2 * noise.cov[0, 0]) / mock.correlator[0]
    assert rel_mock == pytest.approx(np.sqrt(noise.cov[0, 0]) / noise.mean[0], rel=1e-12)
