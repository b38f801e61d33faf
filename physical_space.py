"""The physical space P: non-negative densities made of isolated states, resonances, thresholds and
a continuum, with exact correlators and smeared targets.

Why.  The Chebyshev space (sigma_model_utils) is smooth and may be negative; the densities of
diagonal correlators and of the R-ratio are non-negative and made of a few kinds of structure.
A sample of P is a sum of such structures, each with a non-negative weight, so ρ(ω) ≥ 0 for
every sample by construction.

Forms (lattice units; ω ≥ 0; every shape except the continuum has unit integral over [0, ∞), so
its weight A is the spectral weight of the structure):

  isolated state   A δ(ω - M)
  resonance        A BW(ω; M, Γ), the relativistic Breit-Wigner of a state of mass M and width Γ in
                   s = ω², written in ω and normalised on [0, ∞):
                       BW(ω; M, Γ) = (2ω/π) MΓ / ((ω² - M²)² + M²Γ²) / (1/2 + arctan(M/Γ)/π)
                   (∫_0^∞ (2ω/π) MΓ / ((ω² - M²)² + M²Γ²) dω = 1/2 + arctan(M/Γ)/π, with s = ω²).
                   Near M it is the Lorentzian of width Γ; it vanishes like ω at ω → 0 and falls like
                   ω⁻³ at large ω.  Its poles are ω = ±μ, ±μ*, μ = √(M² - iMΓ): the quadrature
                   refines around Re μ on the scale |Im μ| (≈ M and Γ/2 for Γ ≪ M).
                   Consequence of the form: a resonance has no gap, its tail ∝ ω below the peak makes
                   C(t) fall like a power of t at large t (the threshold components have gaps).
  threshold        A (ω - E)_+^α e^{-β(ω - E)} β^{α+1} / Γ(α + 1)
  continuum        A θ(ω - E_c) (1 - e^{-(ω - E_c)/w})² exp(Σ_{n=1..8} d_n T_n(x(ω))),
                   x(ω) = 1 - 2 e^{-ω} (the map of the Chebyshev space); A = e^{d_0} is the n = 0
                   term of the exponent.  It tends to the constant A exp(Σ d_n) at large ω (an
                   R-ratio-like plateau) and starts quadratically at E_c (the smooth onset).

Counts per sample, drawn independently and uniformly; a sample with no component at all is drawn
again (so every sample has at least one): 0-2 states, 0-3 resonances, 0-2 thresholds, 0-1 continuum.

Ranges (decided with the forms, before any validation result was looked at):
  M, E, E_c ~ U(0.1, 2.5)       over the target window E_k ∈ [0.106, 2.54]
  Γ log-uniform in [0.005, 1]   from far below the narrowest σ (0.44: such a resonance smears to a
                                δ) to above the widest (0.63)
  α ~ U(0.5, 3)                 0.5: the S-wave two-body phase space (p ∝ √(ω - E)); 1.5: P-wave
                                (p³, the vector current); up to 3: higher waves, more bodies
  β log-uniform in [0.5, 5]     the threshold bump (ω - E ≈ α/β) from sharper than σ to slower than
                                the window, where it looks like a rising continuum
  w log-uniform in [0.05, 0.5]  continuum onsets from sharper than σ to about σ
  d_n = r_n / n, r_n ~ U(-1, 1) the continuum's shape: |Σ d_n T_n| ≤ Σ 1/n = 2.7, i.e. modulations
                                by at most a factor e^{±2.7} over the whole ω range
  A = A_scale · 10^{U(-1, 1)}   every weight (and the continuum's plateau scale), spread over two
                                decades.  A_scale = 1/8 puts ρ_σ on the Chebyshev space's scale:
                                the median over samples of max_E |ρ_σ(E)| at σ = 0.44 is 0.53 in
                                the Chebyshev space (N_b = 16 and 128) and was 4.2 in P with
                                A_scale = 1 (2000 samples each, reference preset), hence 1/8.

Storage.  A sample is a fixed-size set of parameter tables (``PARAMETER_TABLES``): the slots of a
kind that the sample does not use have A = 0 and all their parameters 0.  Stored in float64, they
regenerate the sample's correlator and targets bit for bit (``correlators_and_targets``).

Exact integrals.  δ terms are analytic: A b(t, M) in C(t), A G_σ(E - M) in ρ_σ.  The rest of ρ is
integrated by a composite Gauss-Legendre rule built per sample: the panel edges are the union of
  - base edges over [0, ω_end] (``_base_edges``), each panel small enough for N_NODES nodes to
    resolve the kernel's decay, the narrowest Gaussian and the continuum's T_8(x(ω)), with ω_end
    where the kernel at t_min has fallen below 1e-17 of its peak (as for the Chebyshev space);
  - per resonance, Re μ and Re μ ± |Im μ| 3^k (k = 0..6, up to a distance 2): panels that grow
    geometrically away from the peak, on each of which the Lorentzian is smooth (Γ down to 0.005);
  - per threshold, E and E + 0.25 · 3^k (k = -11..1): geometric panels towards the singular onset
    (ω - E)^α; the innermost one is so small (1.4e-6) that the error of Gauss-Legendre on it
    (1e-4 of its part for α = 0.5) is below 1e-10 of the integral even for C(t_max);
  - per continuum, E_c + w · {0, 1, 2, 4}.
Since every panel lies inside one base panel, the kernel and the Gaussians are resolved
everywhere, and the structures where they are sharp.  The result agrees with adaptive quadrature to
~1e-10 of its value or better (tests/test_physical_space.py checks 1e-8 for every kernel).
"""
from __future__ import annotations

import functools

import numpy as np
from scipy.special import gammaln

from sigma_model_utils import _chebyshev_sums, _tail_start, gaussian, kernel, x_of_energy

# --- the space: slots, columns and ranges -------------------------------------------------------
SLOTS = {"states": 2, "resonances": 3, "thresholds": 2, "continuum": 1}
COLUMNS = {"states": ("A", "M"),
           "resonances": ("A", "M", "Gamma"),
           "thresholds": ("A", "E", "alpha", "beta"),
           "continuum": ("A", "E_c", "w") + tuple(f"d_{n}" for n in range(1, 9))}
# the datasets of a sample: [N, slots, columns] (the continuum, one slot: [N, columns])
PARAMETER_TABLES = tuple(SLOTS)
RANGES = {"position": (0.1, 2.5), "Gamma_log_uniform": (0.005, 1.0), "alpha": (0.5, 3.0),
          "beta_log_uniform": (0.5, 5.0), "onset_w_log_uniform": (0.05, 0.5),
          "continuum_degree": 8, "A_scale": 0.125, "A_decades": 2.0,
          "max_counts": {kind: n for kind, n in SLOTS.items()}}


def _log_uniform(rng, bounds, size):
    lo, hi = np.log(bounds[0]), np.log(bounds[1])
    return np.exp(rng.uniform(lo, hi, size=size))


def sample_parameters(rng: np.random.Generator, n: int) -> dict:
    """The parameter tables of ``n`` samples of P (module docstring), from ``rng``.

    All draws are made for every slot, in a fixed order, then the slots beyond each sample's count
    are zeroed: a sample's draws do not depend on the counts of the others."""
    kinds = tuple(SLOTS)
    counts = rng.integers(0, [SLOTS[k] + 1 for k in kinds], size=(n, len(kinds)))
    empty = counts.sum(axis=1) == 0
    while empty.any():                              # at least one component per sample
        counts[empty] = rng.integers(0, [SLOTS[k] + 1 for k in kinds], size=(empty.sum(), len(kinds)))
        empty = counts.sum(axis=1) == 0
    low, high = RANGES["position"]
    half_decades = RANGES["A_decades"] / 2

    def weights(size):
        return RANGES["A_scale"] * 10.0 ** rng.uniform(-half_decades, half_decades, size=size)

    tables = {
        "states": np.stack([weights((n, 2)), rng.uniform(low, high, (n, 2))], axis=-1),
        "resonances": np.stack([weights((n, 3)), rng.uniform(low, high, (n, 3)),
                                _log_uniform(rng, RANGES["Gamma_log_uniform"], (n, 3))], axis=-1),
        "thresholds": np.stack([weights((n, 2)), rng.uniform(low, high, (n, 2)),
                                rng.uniform(*RANGES["alpha"], (n, 2)),
                                _log_uniform(rng, RANGES["beta_log_uniform"], (n, 2))], axis=-1),
    }
    degree = RANGES["continuum_degree"]
    d = rng.uniform(-1.0, 1.0, (n, degree)) / np.arange(1, degree + 1)
    tables["continuum"] = np.concatenate(
        [weights((n, 1)), rng.uniform(low, high, (n, 1)),
         _log_uniform(rng, RANGES["onset_w_log_uniform"], (n, 1)), d], axis=1)[:, None, :]
    for j, kind in enumerate(kinds):
        unused = np.arange(SLOTS[kind])[None, :] >= counts[:, j, None]
        tables[kind][unused] = 0.0
    tables["continuum"] = tables["continuum"][:, 0, :]
    return tables


def _rows(params: dict, kind: str) -> np.ndarray:
    """The table of a kind as [B, slots, columns] (the continuum's one slot included)."""
    table = params[kind]
    return table[:, None, :] if kind == "continuum" else table


# --- the shapes (each written once) ------------------------------------------------------------
def breit_wigner(omega, M, Gamma):
    """BW(ω; M, Γ) = (2ω/π) MΓ / ((ω² - M²)² + M²Γ²) / (1/2 + arctan(M/Γ)/π), unit integral on [0, ∞)."""
    m_gamma = M * Gamma
    norm = 0.5 + np.arctan(M / Gamma) / np.pi
    return (2.0 / np.pi) * omega * m_gamma / (np.square(np.square(omega) - M**2) + m_gamma**2) / norm


def threshold(omega, E, alpha, beta):
    """(ω - E)_+^α e^{-β(ω - E)} β^{α+1} / Γ(α + 1), unit integral on [E, ∞)."""
    y = np.maximum(omega - E, 0.0)
    return np.exp(alpha * np.log(np.where(y > 0, y, 1.0)) - beta * y + (alpha + 1) * np.log(beta)
                  - gammaln(alpha + 1)) * (y > 0)


def continuum(omega, E_c, w, d):
    """θ(ω - E_c) (1 - e^{-(ω - E_c)/w})² exp(Σ_{n=1..8} d_n T_n(x(ω))) for ``omega`` [B, J],
    E_c and w [B], d [B, 8]."""
    y = np.maximum(omega - E_c[:, None], 0.0)
    onset = np.square(-np.expm1(-y / w[:, None]))
    return onset * np.exp(_chebyshev_sums(x_of_energy(omega), d))


def density(omega: np.ndarray, params: dict) -> np.ndarray:
    """The continuous part of ρ (everything but the δ terms) at ``omega`` [B, J] -> [B, J]."""
    omega = np.asarray(omega, dtype=np.float64)
    rho = np.zeros_like(omega)
    for A, M, Gamma in np.moveaxis(params["resonances"], 1, 0).transpose(0, 2, 1):
        used = A > 0
        rho += A[:, None] * breit_wigner(omega, np.where(used, M, 1.0)[:, None],
                                         np.where(used, Gamma, 1.0)[:, None])
    for A, E, alpha, beta in np.moveaxis(params["thresholds"], 1, 0).transpose(0, 2, 1):
        used = A > 0
        rho += A[:, None] * threshold(omega, E[:, None], np.where(used, alpha, 1.0)[:, None],
                                      np.where(used, beta, 1.0)[:, None])
    c = params["continuum"]
    used = c[:, 0] > 0
    if used.any():
        rho += c[:, 0, None] * continuum(omega, c[:, 1], np.where(used, c[:, 2], 1.0), c[:, 3:])
    return rho


# --- the quadrature rule of a batch of samples --------------------------------------------------
N_NODES = 10                                         # Gauss-Legendre nodes per panel
_GL = np.polynomial.legendre.leggauss(N_NODES)
_RESONANCE_STEPS = 3.0 ** np.arange(7)               # |Im μ| · 3^k, k = 0..6
_RESONANCE_REACH = 2.0                               # ... up to this distance from Re μ
_THRESHOLD_STEPS = 0.25 * 3.0 ** np.arange(-11, 2)   # E + 0.25 · 3^k, k = -11..1
_CONTINUUM_STEPS = np.array([0.0, 1.0, 2.0, 4.0])    # E_c + w · ...


def _smear_end(cfg) -> float:
    """Beyond this ω every target Gaussian is below e^{-36} of its peak."""
    return float(cfg.energies.max()) + 8.5 * max(cfg.sigma(s) for s in cfg["sigmas_gev"])


@functools.lru_cache(maxsize=16)
def _base_edges_cached(kind, T, t_min, t_max, low, smear_end, sigma_min) -> np.ndarray:
    omega_end = low + _tail_start({"kernel": kind, "T": T, "t_min": t_min, "E0_min": low})
    tau_max = float(T - t_min) if kind != "laplace" else float(t_max)
    budget = 2 * (N_NODES - 6)            # the degree N_NODES nodes resolve (the Chebyshev space's rule)

    def theta(omega):
        return np.arccos(np.clip(x_of_energy(omega), -1, 1))

    def degree(a, h):
        tau = tau_max if a == 0 else min(tau_max, 40.0 / a)       # e^{-τω} still visible
        smear = 2.5 * h / sigma_min if a < smear_end else 0.0     # the narrowest Gaussian
        return tau * h / 2 + smear + RANGES["continuum_degree"] * (theta(a) - theta(a + h))

    edges = [0.0]
    while edges[-1] < omega_end:
        a, h = edges[-1], omega_end - edges[-1]
        while degree(a, h) > budget:
            h *= 0.9
        edges.append(min(a + h, omega_end))
    return np.array(edges)


def _base_edges(cfg) -> np.ndarray:
    sigma_min = min(cfg.sigma(s) for s in cfg["sigmas_gev"])
    return _base_edges_cached(cfg["kernel"], int(cfg["T"]), int(cfg["t_min"]), int(cfg["t_max"]),
                              RANGES["position"][0], _smear_end(cfg), sigma_min)


def _feature_edges(params: dict) -> np.ndarray:
    """The panel edges of every structure of a batch [B, n_edges]; NaN where a slot is unused."""
    A, M, Gamma = np.moveaxis(params["resonances"], 2, 0)
    used = A > 0
    mu = np.sqrt(np.where(used, M, 1.0) ** 2 - 1j * np.where(used, M * Gamma, 1.0))
    centre, scale = mu.real[..., None], np.abs(mu.imag)[..., None]
    step = scale * _RESONANCE_STEPS
    step = np.where(step <= _RESONANCE_REACH, step, np.nan)
    resonances = np.where(used[..., None], np.concatenate([centre, centre - step, centre + step], axis=-1), np.nan)
    A, E = params["thresholds"][..., 0], params["thresholds"][..., 1]
    thresholds = np.where((A > 0)[..., None], E[..., None] + np.r_[0.0, _THRESHOLD_STEPS], np.nan)
    c = params["continuum"]
    continua = np.where((c[:, 0] > 0)[:, None], c[:, 1, None] + c[:, 2, None] * _CONTINUUM_STEPS, np.nan)
    return np.concatenate([resonances.reshape(len(A), -1), thresholds.reshape(len(A), -1), continua], axis=1)


def quadrature_nodes(params: dict, cfg):
    """Nodes ω [B, J], weights [B, J] and node counts [B] of each sample's composite rule (module
    docstring): sample i's nodes are omega[i, :counts[i]], in increasing order; J is the largest
    count of the batch (the rest of a row is padding with weight 0)."""
    base = _base_edges(cfg)
    features = _feature_edges(params)
    features = np.where((features > 0) & (features < base[-1]), features, np.nan)
    edges = np.sort(np.concatenate([np.broadcast_to(base, (len(features), len(base))), features], axis=1),
                    axis=1)
    n_edges = np.isfinite(edges).sum(axis=1)
    edges = edges[:, :n_edges.max()]
    edges = np.where(np.isfinite(edges), edges, base[-1])
    a, b = edges[:, :-1, None], edges[:, 1:, None]
    z, wz = _GL
    omega = (a + 0.5 * (b - a) * (z + 1.0)).reshape(len(edges), -1)
    weights = (0.5 * (b - a) * wz).reshape(len(edges), -1)
    return omega, weights, (n_edges - 1) * N_NODES


def correlators_and_targets(params: dict, cfg):
    """Exact clean correlators C(t) [B, n_t] and smeared targets {σ_gev: ρ_σ(E_k) [B, N_E]} of a
    batch of samples of P, given by their parameter tables.

    The rules and densities are built for 64 samples at a time; the kernel and Gaussian matrices
    and the sums are made per sample on its own nodes, so a sample's numbers do not depend on the
    other samples of its batch (it regenerates bit for bit from its parameters alone)."""
    t, energies, smear_end = cfg.t, cfg.energies, _smear_end(cfg)
    sigmas = {s: cfg.sigma(s) for s in cfg["sigmas_gev"]}
    n = len(params["states"])
    A, M = params["states"][..., 0], params["states"][..., 1]
    M = np.where(A > 0, M, 1.0)                                              # unused slots: A = 0
    correlators = A[:, None, :] @ kernel(t[None, None, :], M[:, :, None], cfg["kernel"], cfg["T"])
    correlators = correlators[:, 0, :]
    targets = {s: (A[:, None, :] @ gaussian(energies[None, None, :] - M[:, :, None], sigma))[:, 0, :]
               for s, sigma in sigmas.items()}
    for lo in range(0, n, 64):
        sub = {key: value[lo:lo + 64] for key, value in params.items()}
        omega, w, counts = quadrature_nodes(sub, cfg)
        weighted_rho = w * density(omega, sub)
        for i, count in enumerate(counts):
            nodes, weighted = omega[i, :count], weighted_rho[i, :count]
            correlators[lo + i] += weighted @ kernel(t[None, :], nodes[:, None], cfg["kernel"], cfg["T"])
            near = np.searchsorted(nodes, smear_end)
            for s, sigma in sigmas.items():
                targets[s][lo + i] += weighted[:near] @ gaussian(energies[None, :] - nodes[:near, None], sigma)
    return correlators, targets
