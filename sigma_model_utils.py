"""The physics core: kernels, the Chebyshev training space (and the second space of the prior
systematic, method §8: the same construction with its own map scale and E0 range), Gaussian
smearing, exact correlators and smeared targets for whole batches of samples, noise from a real
lattice covariance, and standardisation.  Each formula of method §1-5 is written once, here.

Exact integrals (method §3 accuracy contract).  For a sample with threshold E0 every integral
runs over ω ∈ [E0, ∞).  ρ is continuous at E0 but has a kink there, so the quadrature nodes move
with the sample: ω = E0 + y_j with fixed offsets y_j of a composite Gauss-Legendre rule whose
panels grow geometrically away from E0 (``quadrature_rule``).  The number of nodes of each panel is
set from what has to be resolved there: the oscillations of T_n(x(ω)) up to n = N_b, the
exponential fall of the kernel, and the Gaussian of the narrowest σ.  The rule stops where the
kernel at the first time slice has fallen below 1e-17 of its peak, so the neglected tail is below
the round-off.  Evaluating every kernel through ``kernel`` (the one place of its formula) on
these nodes, the results agree with adaptive quadrature to ~1e-12 of their scale
(tests/test_physics.py checks 1e-8 for N_b up to 512 and every kernel).
"""
from __future__ import annotations

import functools
import zlib
from dataclasses import dataclass

import numpy as np

KERNELS = ("laplace", "periodic", "rratio", "thermal")


# --- method §2: kernels ----------------------------------------------------------------------------
def kernel(t, omega, kind: str, T: int):
    """b(t, ω) of method §2, broadcasting ``t`` against ``omega`` (lattice units, ω > 0).

    thermal: cosh(ω(t - T/2)) / sinh(ωT/2) = (e^{-tω} + e^{-(T-t)ω}) / (1 - e^{-Tω}), written
    with decaying exponentials only (no overflow).
    """
    t = np.asarray(t, dtype=np.float64)
    omega = np.asarray(omega, dtype=np.float64)
    if kind not in KERNELS:
        raise ValueError(f"unknown kernel {kind!r}; expected one of {KERNELS}")
    if kind == "laplace":
        return np.exp(omega * -t)
    forward_backward = np.exp(omega * -t) + np.exp(omega * (t - T))
    if kind == "periodic":
        return forward_backward
    if kind == "rratio":
        return forward_backward * (omega**2 / (12 * np.pi**2))
    return forward_backward / -np.expm1(-T * omega)


# --- method §1: Gaussian smearing ---------------------------------------------------------------
def gaussian(x, sigma: float):
    """G_σ(x) = exp(-x²/2σ²) / (√(2π) σ)."""
    x = np.asarray(x, dtype=np.float64)
    return np.exp(np.square(x) * (-0.5 / sigma**2)) * (1.0 / (np.sqrt(2 * np.pi) * sigma))


# --- method §3: the Chebyshev functional space (and the second space of method §8) -----------------
# the training spaces: the paper's Chebyshev space, the second Chebyshev space of the prior systematic,
# the physical space P (physical_space.py) and the mixture of the first and P (training_sets.py)
SPACES = ("chebyshev", "prior", "physical", "mixture")


def space_parameters(cfg, space: str = "chebyshev") -> dict:
    """The parameters of a training space: the map scale λ of x(E) = 1 - 2 e^{-E/λ}, the range
    of E0 and ε of the coefficient law.  ``chebyshev`` is method §3 (λ = 1); ``prior`` is the second
    space of the prior systematic (method §8, "Beyond the paper"), the preset's ``prior_space``."""
    if space == "chebyshev":
        return {"space": space, "x_scale": 1.0, "E0_min": float(cfg["E0_min"]),
                "E0_max": float(cfg["E0_max"]), "epsilon": float(cfg["epsilon"])}
    if space == "prior":
        p = cfg["prior_space"]
        return {"space": space, "x_scale": float(p["x_scale"]), "E0_min": float(p["E0_min"]),
                "E0_max": float(p["E0_max"]), "epsilon": float(p["epsilon"])}
    raise ValueError(f"{space!r} is not a Chebyshev training space; expected chebyshev or prior")


def x_of_energy(E, x_scale: float = 1.0):
    """x(E) = 1 - 2 e^{-E/λ} (λ = ``x_scale``, 1 in method §3), mapping [0, ∞) onto [-1, 1)."""
    return 1.0 - 2.0 * np.exp(-np.asarray(E, dtype=np.float64) / x_scale)


def chebyshev_basis(E, E0: float, nb: int, x_scale: float = 1.0) -> np.ndarray:
    """B_n(E) = θ(E - E0)[T_n(x(E)) - T_n(x(E0))] for n = 1..N_b, shape [len(E), N_b].

    Written with cos(n arccos x), independently of the Clenshaw sums of ``chebyshev_density``.
    """
    E = np.atleast_1d(np.asarray(E, dtype=np.float64))
    n = np.arange(1, nb + 1)
    theta = np.arccos(np.clip(x_of_energy(E, x_scale), -1, 1))[:, None]
    theta0 = np.arccos(x_of_energy(E0, x_scale))
    return np.where((E >= E0)[:, None], np.cos(n * theta) - np.cos(n * theta0), 0.0)


def sample_coefficients(rng: np.random.Generator, n_samples: int, nb: int, cfg, space: str = "chebyshev"):
    """(E0 [n], c [n, N_b]): E0 ~ U(E0_min, E0_max), c_n = r_n / n^{1+ε}, r_n ~ U(-1, 1)."""
    p = space_parameters(cfg, space)
    E0 = rng.uniform(p["E0_min"], p["E0_max"], size=n_samples)
    r = rng.uniform(-1.0, 1.0, size=(n_samples, nb))
    c = r / np.arange(1, nb + 1) ** (1.0 + p["epsilon"])
    return E0, c


def _chebyshev_sums(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Σ_{n=1..N_b} c[b, n-1] T_n(x[b, j]) by Clenshaw's recurrence, for a batch of samples."""
    nb = c.shape[1]
    b1 = np.zeros_like(x)
    b2 = np.zeros_like(x)
    tmp = np.empty_like(x)
    two_x = 2.0 * x
    for n in range(nb, 0, -1):          # b_n = 2x b_{n+1} - b_{n+2} + c_n, down to n = 1
        np.multiply(two_x, b1, out=tmp)
        tmp -= b2
        tmp += c[:, n - 1, None]
        b1, b2, tmp = tmp, b1, b2
    return x * b1 - b2                  # Σ_{n≥0} c_n T_n = c_0 + x b_1 - b_2, with c_0 = 0


def chebyshev_density(omega: np.ndarray, E0: np.ndarray, c: np.ndarray, x_scale: float = 1.0) -> np.ndarray:
    """ρ(ω) = Σ_n c_n B_n(ω) for a batch: ``omega`` [B, J], ``E0`` [B], ``c`` [B, N_b] -> [B, J]."""
    omega = np.asarray(omega, dtype=np.float64)
    x = x_of_energy(np.concatenate([omega, np.asarray(E0, dtype=np.float64)[:, None]], axis=1), x_scale)
    sums = _chebyshev_sums(x, c)
    return np.where(omega >= E0[:, None], sums[:, :-1] - sums[:, -1:], 0.0)


# --- exact integrals over [E0, ∞) ------------------------------------------------------------
_PANEL_EDGES = (0.0, 0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0)


def _theta(omega, x_scale: float = 1.0):
    return np.arccos(np.clip(x_of_energy(omega, x_scale), -1.0, 1.0))


@dataclass(frozen=True)
class QuadratureRule:
    """Offsets y_j ≥ 0 from E0 and weights w_j: ∫_{E0}^{∞} f(ω) dω ≈ Σ_j w_j f(E0 + y_j).

    The first ``n_smear`` nodes cover every ω where a target Gaussian can matter.
    """
    y: np.ndarray
    w: np.ndarray
    n_smear: int


def _tail_start(cfg) -> float:
    """Offset beyond which b(t_min, ω) < 1e-17 of its peak for every E0 of the space."""
    omega = cfg["E0_min"] + np.linspace(0.0, 200.0, 200_001)
    b = kernel(cfg["t_min"], omega, cfg["kernel"], cfg["T"])
    small = b < 1e-17 * b.max()
    last_large = np.nonzero(~small)[0].max()
    return float(omega[min(last_large + 1, len(omega) - 1)] - cfg["E0_min"])


@functools.lru_cache(maxsize=64)
def _quadrature_rule_cached(nb, kind, T, t_min, t_max, E0_min, x_scale, e_max, sigma_min, sigma_max):
    cfg = {"kernel": kind, "T": T, "t_min": t_min, "E0_min": E0_min}
    y_end = _tail_start(cfg)
    y_smear = e_max + 8.5 * sigma_max - E0_min        # G_σ < e^{-36} beyond
    tau_max = float(T - t_min) if kind != "laplace" else float(t_max)
    edges = [e for e in _PANEL_EDGES if e < y_end] + [y_end]
    ys, ws, n_smear = [], [], 0
    for a, b in zip(edges[:-1], edges[1:]):
        width = b - a
        # what the panel must resolve, as a polynomial degree in the panel variable:
        phase = nb * (_theta(E0_min + a, x_scale) - _theta(E0_min + b, x_scale))  # T_n(x(ω)), n ≤ N_b
        tau = tau_max if a == 0 else min(tau_max, 40.0 / a)              # e^{-τω} still visible
        degree = phase + tau * width / 2.0
        if a < y_smear:
            degree += 2.5 * width / sigma_min                            # the narrowest Gaussian
        n = int(np.ceil(0.5 * degree)) + 6
        z, wz = np.polynomial.legendre.leggauss(n)
        ys.append(a + 0.5 * width * (z + 1.0))
        ws.append(0.5 * width * wz)
        if a < y_smear:
            n_smear += n
    return QuadratureRule(np.concatenate(ys), np.concatenate(ws), n_smear)


def quadrature_rule(cfg, nb: int, space: str = "chebyshev") -> QuadratureRule:
    """The composite Gauss-Legendre rule in ω - E0 for a training space with N_b functions."""
    sigmas = [cfg.sigma(s) for s in cfg["sigmas_gev"]]
    p = space_parameters(cfg, space)
    return _quadrature_rule_cached(int(nb), cfg["kernel"], int(cfg["T"]), int(cfg["t_min"]),
                                   int(cfg["t_max"]), p["E0_min"], p["x_scale"],
                                   float(cfg.energies.max()), float(min(sigmas)), float(max(sigmas)))


def correlators_and_targets(E0: np.ndarray, c: np.ndarray, cfg, rule: QuadratureRule | None = None,
                            space: str = "chebyshev"):
    """Exact clean correlators C(t) [B, n_t] and smeared targets {σ_gev: ρ_σ(E_k) [B, N_E]}.

    method §1-3: C(t) = ∫ b(t, ω) ρ(ω) dω and ρ_σ(E) = ∫ G_σ(E - ω) ρ(ω) dω for the densities
    ρ = Σ_n c_n B_n of a batch of samples of the training space ``space``, by the moving
    composite rule of ``quadrature_rule`` (which must be that space's rule).
    ρ is summed for 64 samples at a time (long vector operations), the kernel and Gaussian arrays
    [samples, nodes, n_t or N_E] are built for 4 at a time (they stay in cache).
    """
    rule = rule or quadrature_rule(cfg, c.shape[1], space)
    x_scale = space_parameters(cfg, space)["x_scale"]
    t, energies, near = cfg.t, cfg.energies, slice(0, rule.n_smear)
    correlators = np.empty((len(E0), len(t)))
    targets = {s: np.empty((len(E0), len(energies))) for s in cfg["sigmas_gev"]}
    for lo in range(0, len(E0), 64):
        omega_64 = E0[lo:lo + 64, None] + rule.y[None, :]                                # [64, J]
        weighted_rho_64 = rule.w * chebyshev_density(omega_64, E0[lo:lo + 64], c[lo:lo + 64], x_scale)
        for sub in range(0, len(omega_64), 4):
            part, omega = slice(lo + sub, lo + sub + 4), omega_64[sub:sub + 4]
            weighted_rho = weighted_rho_64[sub:sub + 4]
            b = kernel(t[None, None, :], omega[:, :, None], cfg["kernel"], cfg["T"])  # [4, J, n_t]
            correlators[part] = np.matmul(weighted_rho[:, None, :], b)[:, 0, :]
            for sigma_gev in cfg["sigmas_gev"]:
                g = gaussian(energies[None, None, :] - omega[:, near, None], cfg.sigma(sigma_gev))
                targets[sigma_gev][part] = np.matmul(weighted_rho[:, None, near], g)[:, 0, :]
    return correlators, targets


# --- method §4: noise from a real lattice correlator ------------------------------------------------
def noise_scale(correlators: np.ndarray, noise) -> np.ndarray:
    """s = C(t_min) / C_latt(t_min) for each clean correlator (method §4, the paper's Eq. 44)."""
    return correlators[..., 0] / noise.mean[0]


def add_noise(correlators: np.ndarray, noise, rng: np.random.Generator, n_noise: int) -> np.ndarray:
    """N_noise noisy copies C + s L z, z ~ N(0, I), of each clean correlator: [B, N_noise, n_t].

    ``noise`` is a noise_files.NoiseModel (its ``mean`` C_latt and ``chol`` L are used)."""
    z = rng.standard_normal((correlators.shape[0], n_noise, correlators.shape[1]))
    s = noise_scale(correlators, noise)
    return correlators[:, None, :] + s[:, None, None] * (z @ noise.chol.T)


# --- method §5: standardisation -------------------------------------------------------------------
def standardise(correlators: np.ndarray, mu: np.ndarray, gamma: np.ndarray) -> np.ndarray:
    """(C - μ)/γ with the training file's clean-correlator mean μ(t) and std γ(t), as float32."""
    return ((correlators - mu) / gamma).astype(np.float32)


# --- reproducible random streams ---------------------------------------------------------------
def rng_for(cfg, purpose: str, *keys: int) -> np.random.Generator:
    """An independent generator for (seed, purpose, keys): e.g. ('training-space', N_b, block)."""
    tag = zlib.crc32(purpose.encode())
    return np.random.default_rng(np.random.SeedSequence(int(cfg["seed"]), spawn_key=(tag, *map(int, keys))))
