"""Build data/standin_baryon_T64.h5: a STAND-IN for the reference's non-public baryon-octet file.

NOT real lattice data.  A simulated ensemble of N_CFG configurations of a nucleon-like correlator
on a periodic T = 64 lattice, measured at t = 0..32 (lattice units, a = 1):

    C(t)   = A0 e^{-M t} + A1 e^{-M1 t}                    (ground state + one excited state)
    C_i(t) = A0 (1 + s0 ε0_i) e^{-M t} + A1 (1 + s1 ε1_i) e^{-M1 t} + B e^{-3/2 m_pi t} η_i(t)

ε0_i, ε1_i ~ N(0, 1): fluctuating amplitudes (the gauge noise of the signal itself, fully
correlated in t, a flat relative error at small t).  η_i(t): unit-variance AR(1) noise in t with
neighbour correlation PHI (the Parisi-Lepage noise, whose standard deviation falls like
e^{-3/2 m_pi t}, so the relative error grows like e^{(M - 3/2 m_pi) t}); B makes the two noise
sources equal at t = T_CROSS.  The backward-propagating (parity-partner) state of the periodic
lattice is left out: for t <= 32 and a partner mass above M it is below e^{-(M_- - M) 32} relative
to the ground state, far below the statistical error there.  The file holds the mean over the
configurations and the covariance OF THE MEAN over t = 1..32 (the reference preset's inputs).

Deterministic (fixed seed): rerunning reproduces the committed arrays bit for bit.
Usage:  python data/make_standin_noise.py [-o data/standin_baryon_T64.h5]
"""
import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from config import load_config  # noqa: E402
from noise_files import noise_from_samples, write_noise_file  # noqa: E402

MODEL = dict(T=64, M=0.50, M1=0.95, A0=1.0, A1=1.2, m_pi=0.20, s0=0.07, s1=0.25,
             PHI=0.9, T_CROSS=8.0, N_CFG=500, T_MEASURED=32, SEED=20231123)
SOURCE = ("STAND-IN: simulated baryon-like ensemble (not real lattice data), "
          "made by data/make_standin_noise.py")


def simulate_ensemble(p: dict) -> np.ndarray:
    """Per-configuration correlators [N_CFG, T_MEASURED + 1] over t = 0..T_MEASURED."""
    rng = np.random.default_rng(p["SEED"])
    t = np.arange(p["T_MEASURED"] + 1, dtype=np.float64)
    eps = rng.standard_normal((p["N_CFG"], 2))
    z = rng.standard_normal((p["N_CFG"], len(t)))
    eta = np.empty_like(z)                        # AR(1) in t, unit variance at every t
    eta[:, 0] = z[:, 0]
    for k in range(1, len(t)):
        eta[:, k] = p["PHI"] * eta[:, k - 1] + np.sqrt(1 - p["PHI"] ** 2) * z[:, k]
    ground, excited = p["A0"] * np.exp(-p["M"] * t), p["A1"] * np.exp(-p["M1"] * t)
    B = p["s0"] * p["A0"] * np.exp(-(p["M"] - 1.5 * p["m_pi"]) * p["T_CROSS"])
    return (ground * (1 + p["s0"] * eps[:, :1]) + excited * (1 + p["s1"] * eps[:, 1:])
            + B * np.exp(-1.5 * p["m_pi"] * t) * eta)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-o", "--output", default=str(REPO / "data" / "standin_baryon_T64.h5"))
    args = parser.parse_args(argv)
    cfg = load_config("reference")
    t, mean, cov, n = noise_from_samples(simulate_ensemble(MODEL), cfg["t_min"], cfg["t_max"])
    write_noise_file(args.output, mean, cov, t, SOURCE, n, cfg, model="C(t) = A0 e^{-M t} + A1 e^{-M1 t}; "
                     "see data/make_standin_noise.py", **{f"model_{k}": v for k, v in MODEL.items()})
    rel = np.sqrt(np.diag(cov)) / mean
    print(f"wrote {args.output}: {n} configurations, t = {int(t[0])}..{int(t[-1])}, relative error "
          f"{rel[0]:.2e} (t={int(t[0])}) .. {rel[-1]:.2f} (t={int(t[-1])})")


if __name__ == "__main__":
    main()
