"""The methods a lattice physicist would pick instead of the audience, behind one interface
(docs/validation.md#peers).

The interface.  Every method is given a ``Problem``: the bootstrap samples of one measured
correlator [N_boot, n_t] on the slices t, the kernel b(t, ω) and T, the energies E_k and the width
σ (lattice units), and E0, the lowest threshold the training space assumes (the prior knowledge
the audience has too; only HLT uses it).  It returns a ``Result``: ρ_σ(E_k), its error, its
covariance over the energies where the method has one, and the wall time.  The data every method
fits are the samples' mean C̄ (the measurement, at closure level 1) with the samples' covariance
Σ (covariance.sample_covariance): the error of C̄.  The peers (``PEERS``):

  hlt     Hansen-Lupo-Tantalo through lsdensities (hlt.py): a direct estimate of ρ_σ(E_k) per energy.
  gp      Gaussian-process regression of ρ(ω) through fredipy: a zero-mean GP prior on ρ with the
          squared-exponential kernel s² exp(-(ω - ω')²/2ℓ²), the data entering through the linear
          constraint C(t) = ∫ b(t, ω) ρ(ω) dω with covariance Σ; (s, ℓ) maximise the marginal
          likelihood over the box GP_BOX (a log grid, then L-BFGS-B from its best point).  ρ_σ is a
          linear map M of ρ, so its posterior is exact: mean M μ, covariance M C Mᵀ.
  mem     the maximum-entropy method with Bryan's algorithm: ρ = m e^{Uu} in the singular subspace
          of the kernel, a flat default model m, the posterior weight P(α|C̄) ∝ Π_k (α/(α+λ_k))^{1/2}
          e^{αS - χ²/2} (Jeffreys' prior on α), ρ averaged over α with it; written here (``bryan``).
  nn_p2p  a network fitted to the one correlator by automatic differentiation: the values ρ(ω_a)
          on the grid as the outputs of a network with a constant input, positive through
          softplus, minimising χ² + λ_s Σ_a (ρ_{a+1} - ρ_a)² + λ_w |θ|² with both λ annealed
          (``NN_P2P``); written here in torch.

The grid.  The methods that reconstruct ρ(ω) (gp, mem, nn_p2p) hold it at the nodes of one rule,
``grid()``: Simpson's rule on [0, OMEGA_MAX] with GRID_NODES nodes.  The same rule gives their
correlator, C(t) = Σ_a w_a b(t, ω_a) ρ(ω_a) (``forward_matrix``), and their smeared density,
ρ_σ(E_k) = Σ_a w_a G_σ(E_k - ω_a) ρ(ω_a) (``smearing_matrix``: the G_σ of method §1 over ω ≥ 0, the
truths' integrand and domain), so their errors go through that linear map.  For a smooth density
the rule reproduces the truths' adaptive quadrature to better than 1e-6 of the peak
(tests/test_peers.py); the tail beyond OMEGA_MAX holds less than 2e-5 of C(t_min) for a flat ρ.

Whitening.  C(t) falls by orders of magnitude over the slices; every fit works with the whitened
data W C̄ and kernel W b, W = L⁻¹ D⁻¹, D = diag(√Σ), L L^T the Cholesky factor of Σ's correlation
matrix: χ² = |W (C[ρ] - C̄)|², the same χ² without the range of scales.  Σ needs more samples than
slices (N_boot > n_t).

Errors of mem and nn_p2p: the fit to C̄ is the centre; the same fit to each of the first
BOOTSTRAP_FITS bootstrap samples (with the same Σ) gives the error (their standard deviation,
ddof = 1) and the covariance (their sample covariance, of rank < BOOTSTRAP_FITS).

The audience is one more method behind the same interface (``Audience``): every replica of every
ensemble predicts the samples, budget.error_budget gives ρ̄ ± σ_tot (the paper's result, with the
covariance of covariance.result_covariances), and, where the audience has interval networks and a
calibration file, the calibrated result of the recommended centre (calibration.calibrated_results).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy import linalg, optimize

from covariance import sample_covariance
from settings import ConfigError
from sigma_model_utils import gaussian, kernel

PEER_KERNELS = ("laplace", "periodic", "rratio")
OMEGA_MAX = 16.0              # the grid's end (lattice units): b(1, ω) ω² there is 5e-5 of its peak
GRID_NODES = 801              # Simpson's rule, step 0.02
BOOTSTRAP_FITS = 20           # mem, nn_p2p: the error from this many bootstrap samples' fits
GP_BOX = {"amplitude": (1e-3, 1e2), "length": (0.02, 4.0)}    # s and ℓ of the GP kernel (lattice units)
GP_GRID = 9                   # the log grid per hyperparameter before L-BFGS-B
# Bryan's MEM: α from 10× the largest curvature eigenvalue at the default model down by 10^(1/4) per
# step until the log posterior falls MEM_DROP below its maximum (or MEM_MAX_ALPHAS steps)
MEM_ALPHA_STEP, MEM_MAX_ALPHAS, MEM_DROP = 10 ** 0.25, 80, 20.0
MEM_MAX_ITER, MEM_TOL = 200, 1e-8
# NN-P2P: the network, the optimiser and the annealing of both regulators
NN_P2P = {"width": 32, "hidden_layers": 2, "steps": 3000, "learning_rate": 1e-3, "lambda_s": (1.0, 1e-3),
          "lambda_w": (1e-3, 1e-6), "anneal_steps": 1500, "seed": 20220815}


# --- the interface -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Problem:
    """What every method is given (see the module docstring)."""
    samples: np.ndarray           # [N_boot, n_t] bootstrap samples of one measured correlator
    t: np.ndarray                 # [n_t] the slices
    kind: str                     # the kernel (sigma_model_utils.KERNELS)
    T: int
    energies: np.ndarray          # [N_E] lattice units
    sigma: float                  # lattice units
    e0: float                     # the lowest threshold the training space assumes

    @property
    def data(self) -> np.ndarray:
        return self.samples.mean(axis=0)

    @property
    def covariance(self) -> np.ndarray:
        return sample_covariance(self.samples, "bootstrap")


def problem(cfg, samples: np.ndarray, sigma_gev: float, pick=None) -> Problem:
    """The Problem of ``samples`` [N_boot, n_t] at σ and the energies cfg.energies[pick] (all by default)."""
    energies = cfg.energies if pick is None else cfg.energies[pick]
    return Problem(np.asarray(samples, dtype=np.float64), cfg.t, cfg["kernel"], int(cfg["T"]), energies,
                   cfg.sigma(sigma_gev), float(cfg["E0_min"]))


@dataclass
class Result:
    """One method's answer for one correlator: ρ_σ(E_k) [N_E], its error [N_E], its covariance
    [N_E, N_E] or None, the wall time and what else the method reports (``details``)."""
    central: np.ndarray
    error: np.ndarray
    covariance: np.ndarray | None = None
    seconds: float = float("nan")
    details: dict = field(default_factory=dict)

    def check(self, n_energies: int, name: str) -> Result:
        """The same checks for every method: shapes, finite values, positive errors, and a
        covariance whose diagonal is the error squared."""
        for what, value in (("central", self.central), ("error", self.error)):
            if np.shape(value) != (n_energies,):
                raise ValueError(f"{name}: {what} of shape {np.shape(value)}, expected ({n_energies},)")
            if not np.all(np.isfinite(value)):
                raise ValueError(f"{name}: {what} has non-finite values")
        if not np.all(self.error > 0):
            raise ValueError(f"{name}: errors must be positive")
        if self.covariance is not None:
            if np.shape(self.covariance) != (n_energies, n_energies):
                raise ValueError(f"{name}: covariance of shape {np.shape(self.covariance)}")
            if not np.allclose(np.sqrt(np.diag(self.covariance)), self.error, rtol=1e-6):
                raise ValueError(f"{name}: the covariance's diagonal is not the error squared")
        return self


@dataclass(frozen=True)
class Peer:
    """A method: its name in the outputs, the package it runs through, how it is configured (in
    words) and its function Problem -> Result."""
    label: str
    package: str
    settings: Callable[[float], str]     # of E0 (only HLT uses it)
    run: Callable[[Problem], Result]


def solve(name: str, p: Problem) -> Result:
    """PEERS[name] on ``p``, timed and checked."""
    t0 = time.perf_counter()
    result = PEERS[name].run(p)
    result.seconds = time.perf_counter() - t0
    return result.check(len(p.energies), name)


def check_kernel(kind: str) -> None:
    if kind not in PEER_KERNELS:
        raise ConfigError(f"kernel {kind!r}: the peers are run with the kernels {PEER_KERNELS}")


# --- the grid, and the linear maps through it -------------------------------------------------------
@dataclass(frozen=True)
class Grid:
    omega: np.ndarray     # [n_ω] nodes
    weights: np.ndarray   # [n_ω] Simpson's weights


def grid(nodes: int = GRID_NODES, omega_max: float = OMEGA_MAX) -> Grid:
    """Simpson's rule on [0, omega_max] with an odd number of nodes (fredipy's Simpson_1D's)."""
    omega = np.linspace(0.0, omega_max, nodes)
    h = omega[1] - omega[0]
    weights = np.where(np.arange(nodes) % 2 == 1, 4.0, 2.0)
    weights[0] = weights[-1] = 1.0
    return Grid(omega, weights * h / 3)


def forward_matrix(p: Problem, g: Grid) -> np.ndarray:
    """[n_t, n_ω]: C(t) = Σ_a w_a b(t, ω_a) ρ(ω_a)."""
    check_kernel(p.kind)
    return kernel(p.t[:, None], g.omega[None, :], p.kind, p.T) * g.weights


def smearing_matrix(energies: np.ndarray, sigma: float, g: Grid) -> np.ndarray:
    """[N_E, n_ω]: ρ_σ(E_k) = Σ_a w_a G_σ(E_k - ω_a) ρ(ω_a)."""
    return gaussian(energies[:, None] - g.omega[None, :], sigma) * g.weights


def whitening(cov: np.ndarray) -> np.ndarray:
    """W with W Σ Wᵀ = 1: L⁻¹ D⁻¹, L L^T the Cholesky factor of Σ's correlation matrix."""
    d = np.sqrt(np.diag(cov))
    try:
        chol = np.linalg.cholesky(cov / np.outer(d, d))
    except np.linalg.LinAlgError as err:
        raise ConfigError(f"the samples' covariance is singular ({err}): the peers need more bootstrap "
                          f"samples than slices (N_boot > n_t = {len(d)})") from err
    return linalg.solve_triangular(chol, np.diag(1.0 / d), lower=True)


def from_fits(p: Problem, fit: Callable[[np.ndarray], np.ndarray], smear: np.ndarray, details: dict) -> Result:
    """A bootstrap method's Result: ``fit`` maps data [n_t] (or a batch [B, n_t]) to ρ on the grid;
    the centre is the fit to C̄, the error and covariance the spread of the fits to the first
    BOOTSTRAP_FITS samples."""
    data = np.concatenate([p.data[None, :], p.samples[:BOOTSTRAP_FITS]])
    rho = fit(data)
    smeared = rho @ smear.T
    cov = sample_covariance(smeared[1:], "bootstrap")
    return Result(smeared[0], np.sqrt(np.diag(cov)), cov,
                  details={**details, "bootstrap_fits": len(data) - 1, "rho_grid": rho[0]})


# --- Gaussian-process regression (fredipy) ---------------------------------------------------------
def gp_posterior(p: Problem, amplitude: float | None = None, length: float | None = None):
    """(posterior mean μ [n_ω], covariance C [n_ω, n_ω] of ρ on the grid, (s, ℓ), log-likelihood) by
    fredipy; s and ℓ by the marginal likelihood over GP_BOX unless given."""
    import fredipy as fp
    g = grid()
    white = whitening(p.covariance)
    check_kernel(p.kind)

    def whitened_kernel(x, w):
        """fredipy's integral operator: row j of W b(t, ω) at the ω it asks for, in either orientation."""
        x, w = np.asarray(x), np.asarray(w)
        rows = x.ravel().astype(int)
        out = (white @ kernel(p.t[:, None], w.ravel()[None, :], p.kind, p.T))[rows]
        return out.T if x.ndim == 2 and x.shape[0] == 1 and x.shape[1] > 1 else out

    integrator = fp.integrators.Simpson_1D(0.0, OMEGA_MAX, GRID_NODES)
    constraint = fp.constraints.LinearEquality(fp.operators.Integral(whitened_kernel, integrator),
                                               [np.arange(len(p.t)), white @ p.data, np.eye(len(p.t))])
    model = fp.models.GP(fp.kernels.RadialBasisFunction(1.0, 1.0), [constraint])

    def minus_log_likelihood(log_params):
        model.set_kernel_params(list(np.exp(log_params)))
        try:
            return -model.log_likelihood()
        except np.linalg.LinAlgError:
            return np.inf

    if amplitude is None or length is None:
        box = np.log([GP_BOX["amplitude"], GP_BOX["length"]])
        candidates = [(a, b) for a in np.linspace(*box[0], GP_GRID) for b in np.linspace(*box[1], GP_GRID)]
        start = min(candidates, key=minus_log_likelihood)
        best = optimize.minimize(minus_log_likelihood, start, method="L-BFGS-B", bounds=box)
        amplitude, length = np.exp(best.x if best.fun <= minus_log_likelihood(start) else start)
    model.set_kernel_params([float(amplitude), float(length)])
    mu, cov = model.predict(g.omega, full_cov=True)
    return mu.ravel(), cov, (float(amplitude), float(length)), model.log_likelihood()


def run_gp(p: Problem) -> Result:
    mu, cov, (amplitude, length), loglik = gp_posterior(p)
    smear = smearing_matrix(p.energies, p.sigma, grid())
    smeared_cov = smear @ cov @ smear.T
    smeared_cov = (smeared_cov + smeared_cov.T) / 2
    return Result(smear @ mu, np.sqrt(np.diag(smeared_cov)), smeared_cov,
                  details={"amplitude": amplitude, "length": length, "log_likelihood": loglik, "rho_grid": mu})


def gp_settings(e0: float) -> str:
    return (f"fredipy: zero-mean GP prior on ρ(ω), squared-exponential kernel s² exp(-(ω-ω')²/2ℓ²); s in "
            f"[{GP_BOX['amplitude'][0]:g}, {GP_BOX['amplitude'][1]:g}], ℓ in [{GP_BOX['length'][0]:g}, "
            f"{GP_BOX['length'][1]:g}] by the marginal likelihood ({GP_GRID}×{GP_GRID} log grid, then L-BFGS-B); "
            f"the data through C(t) = ∫ b(t,ω) ρ(ω) dω with the samples' covariance (whitened), Simpson's rule "
            f"on [0, {OMEGA_MAX:g}] with {GRID_NODES} nodes; ρ_σ = Mρ, posterior M μ ± M C Mᵀ (exact)")


# --- maximum entropy, Bryan's algorithm ------------------------------------------------------------
def default_height(p: Problem, g: Grid) -> float:
    """The flat default model's height: the constant density that reproduces |C̄(t_min)| (a positive
    method's best guess of the scale even where C̄(t_min) < 0, which only a density of both signs gives)."""
    return float(abs(p.data[0]) / forward_matrix(p, g)[0].sum())


def bryan(K: np.ndarray, y: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, dict]:
    """Bryan's maximum entropy for whitened data y ≈ K f (χ² = |K f - y|²), f ≥ 0 the areas of the
    grid's cells, default model m: (f averaged over α with its posterior weight, what was done).

    f = m e^{U u} with U the right singular vectors of K = V Σ Uᵀ (the space every solution of
    ∂Q/∂f = 0, Q = χ²/2 - αS, S = Σ (f - m - f ln(f/m)), lies in); at each α, Newton (Levenberg-
    Marquardt) steps in u solve α u + Σ Vᵀ (K f - y) = 0, each step confined to δuᵀ T δu ≤ 0.2 Σ m
    (T = Uᵀ diag(f) U); α falls from 10× the largest curvature eigenvalue at f = m, each α starting
    from the previous one's solution."""
    V, s, Uh = np.linalg.svd(K, full_matrices=False)
    keep = s > 1e-12 * s[0]
    V, s, U = V[:, keep], s[keep], Uh[keep].T
    Msv = s**2
    limit = 0.2 * m.sum()

    def state(u):
        f = m * np.exp(np.clip(U @ u, -700, 700))
        r = K @ f - y
        entropy = np.sum(f - m - f * (U @ u))
        return f, r, entropy

    def objective(u, alpha):
        f, r, entropy = state(u)
        return 0.5 * r @ r - alpha * entropy

    def curvature(f):
        T = U.T @ (f[:, None] * U)
        lam, P = np.linalg.eigh(T)
        lam = np.maximum(lam, 1e-300)
        A = np.sqrt(lam)[:, None] * (P.T @ (Msv[:, None] * P)) * np.sqrt(lam)[None, :]
        gamma, R = np.linalg.eigh(A)
        gamma = np.maximum(gamma, 0.0)
        return T, gamma, P @ (R / np.sqrt(lam)[:, None]), R.T @ (np.sqrt(lam)[:, None] * P.T)

    def newton(u, alpha):
        mu = 0.0
        for _ in range(MEM_MAX_ITER):
            f, r, _ = state(u)
            grad = alpha * u + s * (V.T @ r)
            T, gamma, Y, Y_inv = curvature(f)
            z = Y_inv @ grad
            q0 = objective(u, alpha)
            for _ in range(60):
                step = -Y @ (z / (alpha + mu + gamma))
                length = step @ T @ step
                if length <= limit and objective(u + step, alpha) <= q0 + 1e-12 * abs(q0):
                    break
                mu = max(10 * mu, 1e-3 * alpha)
            else:
                return u
            u = u + step
            mu /= 10
            if length < MEM_TOL * limit:
                break
        return u

    u = np.zeros(len(s))
    _, gamma0, _, _ = curvature(m)
    alpha = 10 * gamma0.max()
    fs, logp = [], []
    for _ in range(MEM_MAX_ALPHAS):
        u = newton(u, alpha)
        f, r, entropy = state(u)
        _, gamma, _, _ = curvature(f)
        logp.append(0.5 * np.sum(np.log(alpha / (alpha + gamma))) + alpha * entropy - 0.5 * r @ r)
        fs.append(f)
        if len(logp) > 4 and logp[-1] < max(logp) - MEM_DROP and np.argmax(logp) < len(logp) - 1:
            break
        alpha /= MEM_ALPHA_STEP
    logp = np.array(logp)
    weights = np.exp(logp - logp.max())
    weights /= weights.sum()
    best = int(np.argmax(logp))
    return np.tensordot(weights, np.array(fs), axes=1), {
        "alpha_max_posterior": float(10 * gamma0.max() / MEM_ALPHA_STEP**best), "n_alpha": len(logp),
        "singular_values": int(keep.sum())}


def run_mem(p: Problem) -> Result:
    g = grid()
    white = whitening(p.covariance)
    K = white @ kernel(p.t[:, None], g.omega[None, :], p.kind, p.T)      # acts on the areas f = w ρ
    height = default_height(p, g)
    if not height > 0:
        raise ValueError("mem: C̄(t_min) = 0: no scale for the default model")
    m = height * g.weights
    fits = [bryan(K, white @ y, m) for y in np.concatenate([p.data[None, :], p.samples[:BOOTSTRAP_FITS]])]
    rho = np.array([f for f, _ in fits]) / g.weights
    return from_fits(p, lambda data: rho, smearing_matrix(p.energies, p.sigma, g),
                     {"default_height": height, **fits[0][1]})


def mem_settings(e0: float) -> str:
    return (f"written here (Bryan's algorithm): ρ = m e^(Uu) in the singular subspace of the whitened kernel, a "
            f"flat default m = |C̄(t_min)| / ∫ b(t_min, ω) dω (the constant density that reproduces the first "
            f"slice); α from 10× the largest curvature eigenvalue downwards by 10^(1/4) per step until the log "
            f"posterior is {MEM_DROP:g} below its maximum, ρ averaged over α with P(α|C̄) (Jeffreys' prior); "
            f"error from the spread of the fits to {BOOTSTRAP_FITS} bootstrap samples; Simpson's rule on "
            f"[0, {OMEGA_MAX:g}] with {GRID_NODES} nodes")


# --- NN-P2P: a network fitted to one correlator ------------------------------------------------------
def fit_nn_p2p(K: np.ndarray, data: np.ndarray, settings: dict = NN_P2P) -> np.ndarray:
    """ρ on the grid [B, n_ω] for whitened data [B, n_t] ≈ K ρ (χ² = |K ρ - y|²): B independent
    networks trained side by side (stacked weights, one Adam: its updates are per parameter), each
    a constant input 1 → ``hidden_layers`` layers of ``width`` ELU units → n_ω softplus outputs,
    in float32, minimising χ² + λ_s Σ (ρ_{a+1} - ρ_a)² + λ_w |θ|², both λ falling geometrically from their first
    to their last value over ``anneal_steps`` steps, then held."""
    import torch
    gen = torch.Generator().manual_seed(int(settings["seed"]))
    B, n_out, width = data.shape[0], K.shape[1], int(settings["width"])
    sizes = [1] + [width] * int(settings["hidden_layers"]) + [n_out]
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        w = torch.randn(B, fan_out, fan_in, generator=gen, dtype=torch.float32) / np.sqrt(fan_in)
        params += [w.requires_grad_(), torch.zeros(B, fan_out, dtype=torch.float32, requires_grad=True)]
    Kt = torch.as_tensor(K, dtype=torch.float32)
    y = torch.as_tensor(data, dtype=torch.float32)
    opt = torch.optim.Adam(params, lr=float(settings["learning_rate"]))
    (s0, s1), (w0, w1) = settings["lambda_s"], settings["lambda_w"]
    n_anneal = int(settings["anneal_steps"])

    def forward():
        h = torch.ones(B, 1, dtype=torch.float32)
        for j in range(0, len(params), 2):
            h = torch.bmm(params[j], h[:, :, None])[:, :, 0] + params[j + 1]
            h = torch.nn.functional.softplus(h) if j == len(params) - 2 else torch.nn.functional.elu(h)
        return h

    for step in range(int(settings["steps"])):
        x = min(step / n_anneal, 1.0)
        lam_s, lam_w = s0 * (s1 / s0) ** x, w0 * (w1 / w0) ** x
        opt.zero_grad()
        rho = forward()
        chi2 = ((rho @ Kt.T - y) ** 2).sum()
        loss = chi2 + lam_s * (torch.diff(rho, dim=1) ** 2).sum() + lam_w * sum((q**2).sum() for q in params)
        loss.backward()
        opt.step()
    with torch.no_grad():
        return forward().numpy().astype(np.float64)


def nn_p2p_rho(p: Problem, data: np.ndarray) -> np.ndarray:
    """ρ on the grid [B, n_ω] fitted by NN-P2P to each row of ``data`` [B, n_t] with the samples'
    covariance, in units where ρ is of order one: the networks fit ρ / h, h the flat default's
    height (default_height), and their answers are scaled back."""
    g = grid()
    white = whitening(p.covariance)
    height = default_height(p, g)
    if not height > 0:
        raise ValueError("nn_p2p: C̄(t_min) = 0: no unit for ρ")
    return height * fit_nn_p2p(white @ forward_matrix(p, g), data @ white.T / height)


def run_nn_p2p(p: Problem) -> Result:
    g = grid()
    return from_fits(p, lambda data: nn_p2p_rho(p, data), smearing_matrix(p.energies, p.sigma, g),
                     {**NN_P2P, "unit": default_height(p, g)})


def nn_settings(e0: float) -> str:
    s = NN_P2P
    return (f"written here in torch, ρ in units of the flat density that reproduces |C̄(t_min)|: a constant "
            f"input 1 → {s['hidden_layers']} ELU layers of {s['width']} → "
            f"{GRID_NODES} softplus outputs ρ(ω_a) (Simpson's rule on [0, {OMEGA_MAX:g}]); Adam, learning rate "
            f"{s['learning_rate']:g}, {s['steps']} steps; loss χ² + λ_s Σ(ρ_(a+1) − ρ_a)² + λ_w |θ|², λ_s from "
            f"{s['lambda_s'][0]:g} to {s['lambda_s'][1]:g} and λ_w from {s['lambda_w'][0]:g} to "
            f"{s['lambda_w'][1]:g}, geometrically over the first {s['anneal_steps']} steps; initial weights "
            f"from seed {s['seed']}; error from the spread of the fits to {BOOTSTRAP_FITS} bootstrap samples "
            f"(all {BOOTSTRAP_FITS + 1} networks trained side by side)")


# --- HLT (lsdensities) -------------------------------------------------------------------------------
def run_hlt(p: Problem, logdir=None) -> Result:
    import tempfile
    from pathlib import Path

    import hlt
    if int(p.t[0]) != 1:
        raise ConfigError(f"t_min = {int(p.t[0])}: lsdensities' basis starts at t = 1")
    with tempfile.TemporaryDirectory() as tmp:
        out = hlt.run_hlt(p.samples, p.kind, p.T, p.sigma, p.energies, p.e0, Path(logdir or tmp))
    return Result(out["rho"], out["total"], None,
                  details={k: out[k] for k in ("stat", "sys", "lambda", "A_over_A0")})


def hlt_settings(e0: float) -> str:
    import hlt
    return hlt.settings_text(e0)


PEERS = {
    "hlt": Peer("HLT (lsdensities)", "lsdensities", hlt_settings, run_hlt),
    "gp": Peer("GP (fredipy)", "fredipy", gp_settings, run_gp),
    "mem": Peer("MEM (Bryan)", "", mem_settings, run_mem),
    "nn_p2p": Peer("NN-P2P", "torch", nn_settings, run_nn_p2p),
}


def available(name: str) -> bool:
    """Whether a peer's package is installed."""
    import importlib.util
    package = PEERS[name].package
    return not package or importlib.util.find_spec(package) is not None


# --- the audience, behind the same interface ---------------------------------------------------------
AUDIENCE_METHODS = {"audience": "audience, paper (ρ̄ ± σ_tot)",
                    "audience_calibrated": "audience, calibrated (recommended centre)"}


class Audience:
    """The trained audience of ``cfg`` at one σ as a method: calling it with a Problem (its samples;
    the energies must be the preset's grid) gives {'audience': the paper's ρ̄ ± σ_tot with its
    covariance, and, with a calibration file of σ, 'audience_calibrated': the calibrated result of
    the recommended centre with its covariance}.  The networks are loaded once
    (the one-off cost, ``load_seconds``); each call's time is that correlator's prediction and budget."""

    def __init__(self, cfg, sigma_gev: float, device="cpu"):
        from calibration_files import calibration_networks, check_networks, read_calibration
        from io_utils import InputError
        from prediction import Audience as Networks
        from roles import INTERVAL_RUN
        t0 = time.perf_counter()
        self.cfg, self.sigma_gev, self.models, self.calibration = cfg, float(sigma_gev), {}, None
        networks = Networks(cfg, device)

        def load(run: str, what: str):
            missing = networks.checkpoints(sigma_gev, run)[1]
            if missing:
                raise InputError(missing[0], None, f"missing: {what}")
            return networks.networks(sigma_gev, run)
        for ensemble in cfg["ensembles"]:
            self.models[ensemble] = load(ensemble, "train the audience first")
        if cfg.calibration_file(sigma_gev).is_file():
            self.calibration = read_calibration(cfg, sigma_gev)
            check_networks(cfg, self.calibration, calibration_networks(cfg, sigma_gev))
            if cfg["interval_networks"]:
                self.interval = load(INTERVAL_RUN, "the interval networks of the calibration")
        self.load_seconds = time.perf_counter() - t0

    @property
    def methods(self) -> list[str]:
        return list(AUDIENCE_METHODS)[:2 if self.calibration is not None else 1]

    def __call__(self, p: Problem) -> dict:
        import budget as bud
        import calibration
        import covariance as cv
        from interval_outputs import split_quantiles
        from prediction import predict_loaded
        from prediction_files import InputSamples
        from tasks import unmeasured_systematics
        if len(p.energies) != len(self.cfg.energies) or not np.allclose(p.energies, self.cfg.energies):
            raise ValueError("the audience answers at the preset's energies only")
        t0 = time.perf_counter()
        inputs = InputSamples("correlator", p.samples, "bootstrap", "bootstrap samples given", len(p.samples))
        predictions = {e: predict_loaded(self.cfg, inputs, *models) for e, models in self.models.items()}
        b = bud.error_budget(predictions, unmeasured=unmeasured_systematics(self.cfg))
        cov = cv.result_covariances(predictions, b)["total"]
        out = {"audience": Result(b.central, b.total, cov)}
        if self.calibration is not None:
            width = median = None
            if self.cfg["interval_networks"]:
                quantiles = predict_loaded(self.cfg, inputs, *self.interval).astype(np.float64)
                width, median = calibration.width_and_median(*split_quantiles(quantiles))
            centre = self.cfg["calibrated_centre"]
            factors = {centre: self.calibration.factors[centre]}
            results = calibration.calibrated_results(factors, b, width, median)
            covs = calibration.calibrated_covariances(results, factors, b)
            out["audience_calibrated"] = Result(results[centre]["central_calibrated"],
                                                results[centre]["total_calibrated"], covs[centre],
                                                details={"centre": centre})
        seconds = time.perf_counter() - t0
        for name, result in out.items():
            result.seconds = seconds
            result.check(len(p.energies), name)
        return out
