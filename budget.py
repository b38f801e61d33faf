"""The error budget of method §8, one function per formula, pure numpy.

Inputs are the predictions P_k[b, r, E] of each ensemble k on the same N_b input samples (b),
by its N_r replicas (r), at N_E energies (E).

Standard-deviation conventions (stated once, used everywhere):
- over samples b (``sample_std``): for ``bootstrap`` samples -- draws of the data's distribution,
  as the mocks' N(C, s²Σ_latt) -- the error is the samples' standard deviation with ddof = 1;
  for ``jackknife`` samples (leave-one-out means, which scatter N-1 times less than the data) the
  error is the jackknife formula sqrt((N-1)/N Σ_b (x_b - x̄)²).  This is the ONLY place where
  the kind of sample changes anything: σ_stat and σ_Δ both go through it.
- over replicas r (``replica_error``): ddof = 1, the unbiased spread of the networks of an
  ensemble (N_r = 5 in the reference; with a single replica it is undefined, NaN).

A missing ensemble (None) makes the components that need it NaN -- never zero -- and the budget
lists a warning saying which component cannot be computed and why.  A systematic the audience
cannot measure (``unmeasured``, tasks.unmeasured_systematics: its reference ensemble trains the
same network on the same file as Nmax, as Nref_b in the physical space, which has no N_b) is NaN
too, with a warning, but it is not part of σ_tot: σ_tot is then the quadrature sum of the
components that mean something, and the budget says which one it lacks.

The prior systematic (method §8, "Beyond the paper"; an extension reported beside the paper's σ_tot,
never instead of it): when the predictions include the ensemble Nref_prior (Nmax's network, N_b
and N_ρ trained on the second training space), Σ_prior = |Δ_prior| erf(|Δ_prior| / (√2 σ_Δprior))
by the same formulas as the Σ_X, and σ_tot,prior = sqrt(σ_tot² + Σ_prior²) (``sys_prior``,
``total_with_prior``).  Without that ensemble both are None (not computed); listed but missing
(None), both are NaN.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.special import erf

from roles import PRIOR_SYSTEMATIC, REFERENCE, SAMPLE_KINDS, SYSTEMATICS

REPLICA_DDOF = 1
BOOTSTRAP_DDOF = 1
COMPONENTS = ("stat", "rep", *SYSTEMATICS)


def sample_std(x: np.ndarray, axis: int = 0, kind: str = "bootstrap") -> np.ndarray:
    """The statistical error of a quantity from its values on the input samples (see above)."""
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[axis]
    if kind == "bootstrap":
        return np.std(x, axis=axis, ddof=BOOTSTRAP_DDOF)
    if kind == "jackknife":
        return np.sqrt((n - 1) * np.var(x, axis=axis, ddof=0))   # = sqrt((N-1)/N Σ (x - x̄)²)
    raise ValueError(f"sample kind {kind!r}: expected one of {SAMPLE_KINDS}")


def central_value(P: np.ndarray) -> np.ndarray:
    """ρ̄_k = mean over samples and replicas of P_k[b, r, E] -> [E]."""
    return P.mean(axis=(0, 1))


def stat_error(P: np.ndarray, kind: str = "bootstrap") -> np.ndarray:
    """σ_stat,k = std_b(mean_r P_k) -> [E]."""
    return sample_std(P.mean(axis=1), axis=0, kind=kind)


def replica_error(P: np.ndarray) -> np.ndarray:
    """σ_rep,k = std_r(mean_b P_k), ddof = 1 -> [E] (NaN for a single replica)."""
    if P.shape[1] < 2:
        return np.full(P.shape[2], np.nan)
    return np.std(P.mean(axis=0), axis=0, ddof=REPLICA_DDOF)


def difference(P_max: np.ndarray, P_ref: np.ndarray) -> np.ndarray:
    """Δ_X = ρ̄_Nmax - ρ̄_NrefX -> [E]."""
    return central_value(P_max) - central_value(P_ref)


def difference_error(P_max: np.ndarray, P_ref: np.ndarray, kind: str = "bootstrap") -> np.ndarray:
    """σ_ΔX: std_b of the per-sample difference of the replica means (the same samples feed both
    ensembles, so their fluctuations cancel in it), in quadrature with both ensembles' σ_rep."""
    per_sample = P_max.mean(axis=1) - P_ref.mean(axis=1)
    return np.sqrt(sample_std(per_sample, axis=0, kind=kind) ** 2
                   + replica_error(P_max) ** 2 + replica_error(P_ref) ** 2)


def systematic(delta: np.ndarray, sigma_delta: np.ndarray) -> np.ndarray:
    """Σ_X = |Δ| erf(|Δ| / (√2 σ_Δ)): the shift counts only as far as it exceeds its own noise.

    Limits: Δ = 0 -> 0; σ_Δ = 0 with Δ ≠ 0 -> |Δ| (erf(∞) = 1); NaN in -> NaN out.
    """
    a = np.abs(np.asarray(delta, dtype=np.float64))
    s = np.asarray(sigma_delta, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(a == 0, 0.0, a / (np.sqrt(2.0) * s))
    return np.where(np.isnan(s), np.nan, a * erf(ratio))


def total_error(stat, rep, sys_b, sys_rho, sys_n) -> np.ndarray:
    """σ_tot = sqrt(σ_stat² + σ_rep² + Σ_b² + Σ_ρ² + Σ_n²) (NaN if any component is NaN)."""
    return np.sqrt(stat**2 + rep**2 + sys_b**2 + sys_rho**2 + sys_n**2)


def total_with_prior(total, sys_prior) -> np.ndarray:
    """σ_tot,prior = sqrt(σ_tot² + Σ_prior²) (method §8, beside σ_tot; NaN if either is NaN)."""
    return np.sqrt(total**2 + sys_prior**2)


def pulls(central: np.ndarray, truth: np.ndarray, total: np.ndarray) -> np.ndarray:
    """(ρ̄ - truth) / σ_tot per energy (method §9)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return (central - truth) / total


@dataclass
class Budget:
    """Every component of method §8 per energy, plus the ensembles' own central values and errors."""
    central: np.ndarray
    stat: np.ndarray
    rep: np.ndarray
    sys_b: np.ndarray
    sys_rho: np.ndarray
    sys_n: np.ndarray
    total: np.ndarray
    sys_prior: np.ndarray | None = None                 # None: no Nref_prior in the audience
    total_with_prior: np.ndarray | None = None
    deltas: dict = field(default_factory=dict)          # sys_X -> Δ_X (and sys_prior -> Δ_prior)
    delta_errors: dict = field(default_factory=dict)    # sys_X -> σ_ΔX
    ensembles: dict = field(default_factory=dict)       # k -> {central, stat, rep}
    warnings: list = field(default_factory=list)
    unmeasured: tuple = ()                              # the Σ_X this audience cannot measure (not in σ_tot)

    def component(self, name: str) -> np.ndarray:
        return getattr(self, name)

    @property
    def has_prior(self) -> bool:
        """Whether the audience has the prior systematic's ensemble (its columns exist)."""
        return self.sys_prior is not None

    @property
    def total_known(self) -> np.ndarray:
        """Quadrature sum of the components that could be computed (a lower bound of σ_tot)."""
        parts = np.stack([np.nan_to_num(self.component(c), nan=0.0) for c in COMPONENTS])
        return np.sqrt((parts**2).sum(axis=0))


def _check_shapes(predictions: dict) -> tuple[int, int]:
    shapes = {k: np.shape(P) for k, P in predictions.items() if P is not None}
    for k, s in shapes.items():
        if len(s) != 3:
            raise ValueError(f"predictions of {k}: shape {list(s)}, expected [N_boot, N_r, N_E]")
    n_boot = {s[0] for s in shapes.values()}
    n_e = {s[2] for s in shapes.values()}
    if len(n_boot) > 1 or len(n_e) > 1:
        raise ValueError(f"predictions disagree in N_boot or N_E: {shapes}; every ensemble must "
                         "predict the same samples at the same energies")
    return n_boot.pop(), n_e.pop()


def error_budget(predictions: dict, kind: str = "bootstrap", unmeasured=()) -> Budget:
    """The budget of method §8 from {ensemble: P_k[b, r, E] or None (missing)}.

    Nmax is required (it is the result); a missing Nref_X makes Σ_X and σ_tot NaN with a warning;
    an ``unmeasured`` Σ_X (tasks.unmeasured_systematics) is NaN and left out of σ_tot, with a warning.
    """
    if kind not in SAMPLE_KINDS:
        raise ValueError(f"sample kind {kind!r}: expected one of {SAMPLE_KINDS}")
    if predictions.get(REFERENCE) is None:
        raise ValueError(f"no predictions of {REFERENCE}: it gives the central value, so there is no "
                         "result without it")
    predictions = {k: None if P is None else np.asarray(P, dtype=np.float64) for k, P in predictions.items()}
    n_boot, n_e = _check_shapes(predictions)
    if n_boot < 2:
        raise ValueError(f"{n_boot} input sample(s): the statistical error needs at least 2")
    P_max = predictions[REFERENCE]
    warnings = []
    ensembles = {}
    for k, P in predictions.items():
        if P is not None:
            ensembles[k] = {"central": central_value(P), "stat": stat_error(P, kind), "rep": replica_error(P)}
            if P.shape[1] < 2:
                warnings.append(f"{k} has {P.shape[1]} replica: its replica spread σ_rep is undefined (NaN)")
    values = {"central": central_value(P_max), "stat": stat_error(P_max, kind), "rep": replica_error(P_max)}
    deltas, delta_errors = {}, {}
    prior_name, prior_ref = PRIOR_SYSTEMATIC
    wanted = dict(SYSTEMATICS, **({prior_name: prior_ref} if prior_ref in predictions else {}))
    for name, ref in wanted.items():
        P_ref = predictions.get(ref)
        if name in unmeasured:
            warnings.append(f"{name} (Σ_{name[4:]}) is not measured: {ref} trains the same network on the same "
                            f"file as {REFERENCE} in this training space, so their difference is only the seeds' "
                            f"noise; it is NaN and not part of σ_tot")
            deltas[name] = delta_errors[name] = values[name] = np.full(n_e, np.nan)
            continue
        if P_ref is None:
            total = "σ_tot,prior" if name == prior_name else "σ_tot"
            warnings.append(f"{ref} is missing: {name} (Σ_{name[4:]}) cannot be computed and is NaN, "
                            f"so {total} is NaN too")
            deltas[name] = delta_errors[name] = values[name] = np.full(n_e, np.nan)
            continue
        deltas[name] = difference(P_max, P_ref)
        delta_errors[name] = difference_error(P_max, P_ref, kind)
        values[name] = systematic(deltas[name], delta_errors[name])
    values["total"] = total_error(*(np.zeros(n_e) if c in unmeasured else values[c] for c in COMPONENTS))
    if prior_name in values:
        values["total_with_prior"] = total_with_prior(values["total"], values[prior_name])
    return Budget(**values, deltas=deltas, delta_errors=delta_errors, ensembles=ensembles,
                  warnings=warnings, unmeasured=tuple(unmeasured))
