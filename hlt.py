"""The Hansen-Lupo-Tantalo method through its authors' package ``lsdensities`` (a peer of the
audience, peers.py): the smeared density of one correlator's bootstrap samples at given energies.

HLT and the kernels.  lsdensities knows the bases e^{-tω} (EXP, our ``laplace``) and
e^{-tω} + e^{-(T-t)ω} (COSH, our ``periodic``), with the Gaussian target G_σ(E - ω) normalised on
the real line (its FULLNORMGAUSS, the G_σ of method §1).  Our default kernel ``rratio`` is
ω²/(12π²) times the periodic one, so Σ_t g_t b_t(ω) ≈ G_σ(E - ω) is the COSH problem with the
target w(ω) G_σ(E - ω), w = b_periodic / b_rratio = 12π²/ω².  lsdensities has no switch for a
weighted target, so for ``rratio`` the two target integrals it needs are supplied to it
(``target_integrals``): f_t(E) = ∫_{E0}^∞ e^{αω} b_t(ω) w(ω) G_σ(E - ω) dω and
A0(E) = ∫_{E0}^∞ e^{αω} w(ω)² G_σ(E - ω)² dω, by adaptive quadrature (float64, relative 1e-12);
everything else (the basis' S matrix in multiple precision, the λ scan, the errors) is
lsdensities' own.  With w = 1 these quadratures reproduce lsdensities' closed forms
(tests/test_peers.py); with the rratio weight, HLT results computed with f_t from mpmath's
quadrature at 51 digits agree with the float64 ones to 6 digits for λ from 1e-3 down to 1e-9
(checked on the O3 mock at E = 1.8, σ = 0.44).  E0, the lower end of HLT's A functional (the
energy below which ρ is assumed to vanish), is the training space's E0_min: the same prior
knowledge the audience has.  For every kernel lsdensities' target integrals are memoised (it
recomputes each t_max times per λ).

Settings: lsdensities' example settings (8 compatible steps within 0.3 σ, kfactor 0.1,
A/A0 < 0.1) with one α = 0 for speed and λ scanned from 0.1 down to 1e-10 (``settings_text``).
The statistical error is lsdensities' spread over the bootstrap samples; the systematic one the
change of the result from λ to kfactor·λ; the error reported is their quadrature sum.  HLT has no
covariance between energies here (each energy is a separate λ scan).
"""
from __future__ import annotations

import contextlib
import functools
import io

import numpy as np
from scipy import integrate

from settings import ConfigError
from sigma_model_utils import gaussian, kernel

PRECISION_DIGITS = 51         # mpmath digits: what lsdensities' adjust_precision suggests for t_max = 32
# lsdensities' example settings, with the λ range moved to where the stand-in noise puts the plateau
# (measured on the O3 mock: A/A0 < 0.1 and stable results between λ ~ 1e-5 and 1e-9)
SETTINGS = dict(alphaA=0, alphaB=0.5, alphaC=1.99, lambdaMax=0.1, lambdaStep=0.05, lambdaScanCap=8,
                kfactor=0.1, lambdaMin=1e-10, comparisonRatio=0.3)
A0_CUT = 0.1
PERIODICITY = {"laplace": "EXP", "periodic": "COSH", "rratio": "COSH"}


def target_weight(kind: str, T: int):
    """w(ω) with b_kind = b_basis / w, b_basis lsdensities' basis; None when w = 1."""
    if kind not in PERIODICITY:
        raise ConfigError(f"kernel {kind!r}: lsdensities knows only the bases of {sorted(PERIODICITY)}")
    if kind != "rratio":
        return None
    # the ratio at t = 0, where the common factor 1 + e^{-Tω} never underflows
    return lambda omega: kernel(0.0, omega, "periodic", T) / kernel(0.0, omega, "rratio", T)


def _quad(f, lo: float, peak: float, sigma: float) -> float:
    """∫_lo^∞ f, f concentrated within 12σ of ``peak`` (a Gaussian factor), by QUADPACK."""
    hi = max(peak, lo) + 12.0 * sigma
    points = [p for p in (peak - 3 * sigma, peak, peak + 3 * sigma) if lo < p < hi]
    head = integrate.quad(f, lo, hi, points=points or None, epsabs=0.0, epsrel=1e-12, limit=400)[0]
    return head + integrate.quad(f, hi, np.inf, epsabs=0.0, epsrel=1e-12, limit=400)[0]


def weighted_ft(weight, e, t, sigma_, alpha, e0=0, type="EXP", T=0, ker_type="FULLNORMGAUSS"):
    """f_t(E) = ∫_{E0}^∞ e^{αω} b_t(ω) w(ω) G_σ(E - ω) dω with lsdensities' basis b_t (EXP or COSH)."""
    from mpmath import mpf
    e, t, sigma, alpha, e0 = (float(x) for x in (e, t, sigma_, alpha, e0))
    periodic = type == "COSH"

    def f(w):
        basis = np.exp(-t * w) + (np.exp(-(T - t) * w) if periodic else 0.0)
        return np.exp(alpha * w) * basis * (weight(w) if weight else 1.0) * gaussian(e - w, sigma)
    return mpf(_quad(f, e0, e, sigma))


def weighted_a0(weight, e_, sigma_, alpha, e0=0, ker_type="FULLNORMGAUSS"):
    """A0(E) = ∫_{E0}^∞ e^{αω} (w(ω) G_σ(E - ω))² dω."""
    from mpmath import mpf
    e, sigma, alpha, e0 = (float(x) for x in (e_, sigma_, alpha, e0))

    def f(w):
        return np.exp(alpha * w) * ((weight(w) if weight else 1.0) * gaussian(e - w, sigma)) ** 2
    return mpf(_quad(f, e0, e, sigma))


@contextlib.contextmanager
def target_integrals(kind: str, T: int):
    """Within: lsdensities' f_t and A0 are those of the target w(ω) G_σ(E - ω) of kernel ``kind``
    (its own closed forms when w = 1), memoised."""
    import lsdensities.abw as labw
    import lsdensities.core as lcore
    import lsdensities.transform as ltr
    saved = (ltr.ft_mp, labw.ft_mp, lcore.A0_mp, labw.A0_mp)
    weight = target_weight(kind, T)
    if weight is None:
        ft, a0 = saved[0], saved[2]
    else:
        ft, a0 = functools.partial(weighted_ft, weight), functools.partial(weighted_a0, weight)
    ft_cached, a0_cached = functools.lru_cache(maxsize=None)(ft), functools.lru_cache(maxsize=None)(a0)
    ltr.ft_mp = labw.ft_mp = ft_cached
    lcore.A0_mp = labw.A0_mp = a0_cached
    try:
        yield
    finally:
        ltr.ft_mp, labw.ft_mp, lcore.A0_mp, labw.A0_mp = saved


def run_hlt(samples: np.ndarray, kind: str, T: int, sigma: float, energies: np.ndarray, e0: float,
            logdir) -> dict:
    """lsdensities' HLT on bootstrap ``samples`` [N, n_t] (t = 1..n_t) at ``energies`` (lattice
    units, σ too): {'rho', 'stat', 'sys', 'total', 'lambda', 'A_over_A0'} per energy, and 'log'
    (lsdensities' printed output; its own log files go to ``logdir``)."""
    from lsdensities.InverseProblemWrapper import AlgorithmParameters, InverseProblemWrapper
    from lsdensities.utils.rhoUtils import Inputs, MatrixBundle, Obs, init_precision
    from mpmath import mpf

    n_t = samples.shape[1]
    logdir.mkdir(parents=True, exist_ok=True)
    log = io.StringIO()
    with contextlib.redirect_stdout(log), target_integrals(kind, int(T)):
        init_precision(PRECISION_DIGITS)
        par = Inputs()
        par.time_extent, par.tmax = int(T), n_t
        par.periodicity, par.kerneltype = PERIODICITY[kind], "FULLNORMGAUSS"
        par.sigma, par.e0, par.Na, par.A0cut = float(sigma), float(e0), 1, A0_CUT
        par.num_boot, par.emin, par.emax, par.Ne = len(samples), float(energies[0]), float(energies[-1]), len(energies)
        par.outdir = par.logpath = str(logdir)
        par.assign_values()
        corr = Obs(T=n_t, tmax=n_t, nms=len(samples), is_resampled=True)
        corr.sample = np.array(samples, dtype=np.float64)
        corr.evaluate()
        corr.evaluate_covmatrix()
        corr.fill_mp_sample_NOSHIFT()     # our column 0 is t = 1, lsdensities' first basis function
        bundle = MatrixBundle(Bmatrix=corr.mpcov, bnorm=mpf(str(corr.central[0] ** 2)))
        hlt = InverseProblemWrapper(par=par, algorithmPar=AlgorithmParameters(**SETTINGS),
                                    matrix_bundle=bundle, correlator=corr, energies=list(map(float, energies)))
        hlt.prepareHLT()
        hlt.run()
        a0 = hlt.selectA0[hlt.algorithmPar.alphaA].valute_at_E     # A[g] is stored unnormalised
    return {"rho": np.array(hlt.rhoResultHLT, dtype=float), "stat": np.array(hlt.drho_result, dtype=float),
            "sys": np.array(hlt.rho_sys_err_HLT, dtype=float),
            "total": np.array(hlt.rho_quadrature_err_HLT, dtype=float),
            "lambda": np.array(hlt.lambdaResultHLT, dtype=float),
            "A_over_A0": np.array([float(hlt.aa0[k] / a0[k]) for k in range(len(energies))]),
            "log": log.getvalue()}


def lsdensities_version() -> str:
    from importlib.metadata import version
    return version("lsdensities")


def settings_text(e0: float) -> str:
    """The HLT settings in words, for the outputs: one automated stability criterion, one α."""
    p = SETTINGS
    return (f"lsdensities {lsdensities_version()}: λ scanned downwards from {p['lambdaMax']:g} in steps of "
            f"{p['lambdaStep']:g} (each step divided by 4 whenever λ would reach 0) down to {p['lambdaMin']:g}; "
            f"the result is taken at the first λ of the first run of {p['lambdaScanCap']} consecutive λ whose "
            f"results overlap the previous λ's within {p['comparisonRatio']:g} of their statistical errors with "
            f"A/A0 < {A0_CUT:g} (lsdensities' automated stability criterion, the only one used); systematic "
            f"error from the result at {p['kfactor']:g}·λ, added in quadrature to the statistical one; "
            f"α = {p['alphaA']:g} only; E0 = {e0:g} (the training space's lowest threshold)")
