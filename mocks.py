"""The two validation mocks of method §9, outside the Chebyshev training space, with their exact
correlators and exact smeared densities for every σ of the preset.

O(3) non-linear sigma model, 2-particle vector-current density (threshold E_th = 2m, key
``o3_threshold``; reference 1.0):

    θ = 2 arccosh(ω/E_th),  ρ(ω) = θ(ω - E_th) (3π³/(4θ²)) (θ² + π²)/(θ² + 4π²) tanh³(θ/2)

Delta peak + tanh continuum (keys ``delta_A``, ``delta_M``, ``delta_B``, ``delta_Ec``,
``delta_w``):

    ρ(ω) = A δ(ω - M) + B (1 + tanh((ω - E_c)/w))/2

A = 1.5 and M = 0.8 are the method's reference values.  Our choice for the continuum:
B = 0.5, E_c = 1.6, w = 0.2.  E_c = 2M puts the onset where a two-particle threshold of the
peak's particle would be, well inside the energy grid (0.106..2.54), so the reconstruction has to
resolve an isolated peak *and* a rising continuum; at σ = 0.44 the peak (height
A/(√(2π)σ) ≈ 1.4) and the continuum plateau (B = 0.5) are of comparable size and the two are
~2σ apart, so neither hides the other.  w = 0.2 makes the rise sharp compared with both σ (a
feature the smearing must wash out, not one the density already lacks) while keeping ρ smooth.
The continuum does not vanish at ω → 0 (it is B e^{-2E_c/w}/(1 + e^{-2E_c/w}) ≈ 1e-7 B there);
with the ``thermal`` kernel, b(t, ω) ~ 2/(Tω), its correlator diverges, so that combination is
refused.

The table MOCK_TABLE (name, factory, prediction and analysis scripts, Slurm submit script) is
the one list of mocks: ``make_mock``, the local runner (run_pipeline.py) and the Slurm scripts
(``python mocks.py scripts NAME`` in slurm_scripts/common.sh) read it.  A new mock is a factory
and a row here, plus its three small caller scripts.

"Exact" means adaptive quadrature (scipy.integrate.quad) with a relative tolerance of 1e-11;
the delta is integrated analytically: A b(t, M) in the correlator, A G_σ(E - M) in the smeared
density.  Smearing integrals run over E ± 12σ (the Gaussian beyond is below e^{-72} of its peak).
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass

import h5py
import numpy as np
from scipy import integrate
from scipy.special import expit

from config import ConfigError
from io_utils import atomic_output, provenance, write_attrs
from sigma_model_utils import gaussian, kernel, noise_scale

_QUAD = {"epsabs": 0.0, "epsrel": 1e-11, "limit": 500}
_SMEAR_HALF_WIDTH = 12.0   # smearing integrals over E ± 12σ


@dataclass(frozen=True)
class Mock:
    """A validation mock: its clean correlator on the preset's slices and its exact truths."""
    name: str
    correlator: np.ndarray                 # C(t) [n_t], t = cfg.t
    truth: dict                            # σ_gev -> ρ_σ(E_k) [N_E]
    parameters: dict
    density: Callable                      # the continuous part of ρ(ω)
    peak: tuple | None = None              # (A, M) of a delta peak A δ(ω - M), if any


# --- the densities -------------------------------------------------------------------------------
def o3_density(omega, threshold: float) -> np.ndarray:
    """The O(3) 2-particle vector-current density of method §9 (zero below threshold)."""
    omega = np.asarray(omega, dtype=np.float64)
    above = omega > threshold
    theta = 2.0 * np.arccosh(np.where(above, omega, 2.0 * threshold) / threshold)
    rho = (3 * np.pi**3 / (4 * theta**2) * (theta**2 + np.pi**2) / (theta**2 + 4 * np.pi**2)
           * np.tanh(theta / 2) ** 3)
    return np.where(above, rho, 0.0)


def tanh_continuum(omega, height: float, onset: float, width: float) -> np.ndarray:
    """B (1 + tanh((ω - E_c)/w))/2, the continuum of the delta_tanh mock (method §9), written as
    B expit(2(ω - E_c)/w): the same function without the cancellation of 1 + tanh ≈ 0 far below
    the onset (which rounds to noise QUADPACK cannot integrate when w is small)."""
    return height * expit(2.0 * (np.asarray(omega, dtype=np.float64) - onset) / width)


# --- adaptive quadrature -------------------------------------------------------------------------
def _quad(f, a: float, b: float, points=()) -> float:
    """∫_a^b f by QUADPACK; ``points`` (inside (a, b)) split the range where f has structure.

    Pieces where f is negligible may not reach the relative tolerance on their own; what counts
    is the error of the whole integral, checked here (1e-9 of it, or it is an error).
    """
    edges = [a] + sorted(p for p in points if a < p < b) + [b]
    total = error = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        value, abserr = integrate.quad(f, lo, hi, full_output=1, **_QUAD)[:2]
        total += value
        error += abserr
    if not error <= 1e-9 * abs(total):
        raise ArithmeticError(f"adaptive quadrature over [{a}, {b}] did not converge: "
                              f"{total:.6g} ± {error:.2g}")
    return total


def correlator_of(density, cfg, start: float, points=()) -> np.ndarray:
    """C(t) = ∫_start^∞ b(t, ω) ρ(ω) dω for the preset's slices and kernel (method §1-2)."""
    out = np.empty(cfg.n_t)
    for i, t in enumerate(cfg.t):
        def integrand(w, t=t):
            return float(kernel(t, w, cfg["kernel"], cfg["T"]) * density(w))
        # a finite piece holding the structure, then the exponentially falling tail
        cut = max([start + 1.0, *points])
        out[i] = _quad(integrand, start, cut, points) + _quad(integrand, cut, np.inf)
    return out


def smeared_of(density, cfg, sigma_gev: float, start: float, points=()) -> np.ndarray:
    """ρ_σ(E_k) = ∫_start^∞ G_σ(E_k - ω) ρ(ω) dω at the preset's energies (method §1)."""
    sigma = cfg.sigma(sigma_gev)
    out = np.empty(len(cfg.energies))
    for k, E in enumerate(cfg.energies):
        lo = max(start, E - _SMEAR_HALF_WIDTH * sigma)
        hi = E + _SMEAR_HALF_WIDTH * sigma
        if hi <= lo:
            out[k] = 0.0
            continue
        out[k] = _quad(lambda w: float(gaussian(E - w, sigma) * density(w)), lo, hi, (E, *points))
    return out


# --- the mocks -----------------------------------------------------------------------------------
def o3_mock(cfg) -> Mock:
    """The O(3) mock with threshold ``o3_threshold`` (method §9)."""
    e_th = float(cfg["o3_threshold"])

    def density(w):
        return o3_density(w, e_th)

    correlator = correlator_of(density, cfg, e_th)
    truth = {s: smeared_of(density, cfg, s, e_th) for s in cfg["sigmas_gev"]}
    return Mock("O3", correlator, truth, {"o3_threshold": e_th}, density)


def delta_tanh_mock(cfg) -> Mock:
    """The delta peak + tanh continuum mock (method §9); the delta is integrated analytically."""
    A, M = float(cfg["delta_A"]), float(cfg["delta_M"])
    B, Ec, w = float(cfg["delta_B"]), float(cfg["delta_Ec"]), float(cfg["delta_w"])
    if cfg["kernel"] == "thermal" and B != 0:
        raise ConfigError("the delta_tanh mock's continuum does not vanish at ω = 0, so its correlator "
                         "diverges with the thermal kernel (b ~ 2/(Tω)); use the O3 mock, or delta_B=0")

    def continuum(omega):
        return tanh_continuum(omega, B, Ec, w)

    rise = (Ec - 10 * w, Ec, Ec + 10 * w)   # QUADPACK must see the rise, however sharp
    correlator = A * kernel(cfg.t, M, cfg["kernel"], cfg["T"]) + correlator_of(continuum, cfg, 0.0, rise)
    truth = {s: A * gaussian(cfg.energies - M, cfg.sigma(s)) + smeared_of(continuum, cfg, s, 0.0, rise)
             for s in cfg["sigmas_gev"]}
    return Mock("delta_tanh", correlator, truth,
                {"delta_A": A, "delta_M": M, "delta_B": B, "delta_Ec": Ec, "delta_w": w}, continuum, (A, M))


@dataclass(frozen=True)
class MockEntry:
    """One row of the table of mocks: the name in the output files, the factory, the scripts."""
    name: str
    factory: Callable
    predict_script: str
    analyze_script: str
    submit_script: str                     # in slurm_scripts/


# The order is part of the bootstrap streams (rng_for(cfg, 'bootstrap', index)): append only.
MOCK_TABLE = (
    MockEntry("O3", o3_mock, "predict_on_O3_mock_sigma.py", "analyze_O3_mock_sigma.py",
              "submit_prediction_O3.sh"),
    MockEntry("delta_tanh", delta_tanh_mock, "predict_on_delta_tanh.py", "analyze_delta_tanh_mock.py",
              "submit_prediction_delta.sh"),
)
MOCKS = tuple(m.name for m in MOCK_TABLE)


def user_data_name(text: str) -> str:
    """The ``--name`` of user data (an argparse type, for both user-data scripts): it names files
    under --root, so only letters, digits, - and _ (no path), and not a mock's name."""
    if text in MOCKS or not text or not text.replace("_", "").replace("-", "").isalnum() or not text.isascii():
        raise argparse.ArgumentTypeError(f"{text!r}: use letters, digits, - and _ (a file name under "
                                         f"--root, no path), and not a mock's name {MOCKS}")
    return text


def mock_entry(name: str) -> MockEntry:
    for entry in MOCK_TABLE:
        if entry.name == name:
            return entry
    raise ValueError(f"unknown mock {name!r}; expected one of {MOCKS}")


def make_mock(name: str, cfg) -> Mock:
    """The mock called ``name`` (one of MOCKS) for the preset's geometry and σ list."""
    return mock_entry(name).factory(cfg)


def write_mock_file(cfg, mock: Mock, noise, path) -> None:
    """The mock as a file: ``mean`` [n_t] (its exact correlator), ``cov`` [n_t, n_t] = s²Σ_latt
    (the noise of method §4) and ``t`` -- the user-data layout, so it can be fed to
    predict_on_user_data.py -- plus ``energies`` and ``true_smeared_rho_sigma_{σ}`` [N_E] per σ;
    attributes ``kernel``, ``T``, the parameters and the provenance."""
    scale = float(noise_scale(mock.correlator, noise))
    with atomic_output(path) as tmp:
        with h5py.File(tmp, "w") as h5:
            h5["t"] = cfg.t
            h5["mean"] = mock.correlator
            h5["cov"] = scale**2 * noise.cov
            h5["energies"] = cfg.energies
            for sigma_gev, truth in mock.truth.items():
                h5[f"true_smeared_rho_sigma_{sigma_gev}"] = truth
            write_attrs(h5, provenance(cfg, mock=mock.name, kernel=cfg["kernel"], T=int(cfg["T"]),
                                       parameters=json.dumps(mock.parameters), noise_file=noise.path,
                                       noise_scale_s=float(scale)))


def main(argv=None) -> int:
    """For the Slurm scripts: ``python mocks.py scripts NAME`` prints the prediction and analysis
    scripts of a mock; ``python mocks.py submit-scripts`` the submit script of every mock."""
    args = sys.argv[1:] if argv is None else argv
    if args == ["submit-scripts"]:
        print(" ".join(m.submit_script for m in MOCK_TABLE))
        return 0
    if len(args) == 2 and args[0] == "scripts":
        try:
            entry = mock_entry(args[1])
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        print(entry.predict_script, entry.analyze_script)
        return 0
    print("usage: python mocks.py submit-scripts | scripts NAME", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
