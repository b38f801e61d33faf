"""The result as correlated objects of the users' own libraries: gvar and pyerrors files.

The only writer of these two formats; each is written by the library itself and read back by it:

- ``{name}_sigma{σ}_result.gvar``: ``gvar.dump`` of ``gvar.gvar(central, cov)``, the N_E values
  of ρ_σ(E) with their full covariance over energies.  Load it with ``gvar.load(path)``: an array
  of correlated gvars (``gvar.evalcov``, ``gvar.evalcorr``; any function of them carries the
  right error).
- ``{name}_sigma{σ}_result.json.gz``: pyerrors' JSON (``pyerrors.input.json.create_json_string``,
  gzipped as its ``dump_to_json`` does), one array of N_E correlated Obs.  Load it with
  ``pyerrors.input.json.load_json(path)`` and call ``gamma_method()`` on the Obs before asking for
  errors.  The Obs are built with pyerrors' own constructor ``cov_Obs`` from the covariance's
  eigen-decomposition, Cov = V diag(λ) Vᵀ: K independent Obs z_j with variances λ_j (negative
  round-off eigenvalues of the nearly singular matrix set to 0) and ρ_i = c_i + Σ_j V_ij z_j, so
  the Obs carry exactly the covariance, without a ridge.

Both packages are optional (requirements-formats.txt); ``available()`` says which are installed.
"""
from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np

from io_utils import atomic_output

PACKAGES = ("gvar", "pyerrors")
SUFFIXES = {"gvar": "result.gvar", "pyerrors": "result.json.gz"}
COVOBS_NAME = "rho_sigma"          # the name pyerrors keeps for the covariance's directions


def available() -> list[str]:
    """The export packages that are installed."""
    return [name for name in PACKAGES if importlib.util.find_spec(name) is not None]


def _check(central, cov) -> tuple[np.ndarray, np.ndarray]:
    central = np.asarray(central, dtype=np.float64)
    cov = np.asarray(cov, dtype=np.float64)
    if cov.shape != (len(central), len(central)) or not (np.all(np.isfinite(central))
                                                         and np.all(np.isfinite(cov))):
        raise ValueError("the covariance is incomplete (NaN: a component of the error could not be "
                         "computed) or has the wrong shape: no correlated export")
    return central, 0.5 * (cov + cov.T)


def write_gvar(path, central, cov) -> Path:
    """gvar.dump(gvar.gvar(central, cov)) to ``path``, atomically."""
    import gvar
    central, cov = _check(central, cov)
    with atomic_output(path) as tmp:
        gvar.dump(gvar.gvar(central, cov), str(tmp))
    return Path(path)


def pyerrors_obs(central, cov) -> list:
    """N_E correlated pyerrors Obs with the given means and covariance (see the module docstring)."""
    import pyerrors
    central, cov = _check(central, cov)
    values, vectors = np.linalg.eigh(cov)
    z = np.array(pyerrors.cov_Obs([0.0] * len(values), np.diag(np.clip(values, 0.0, None)), COVOBS_NAME),
                 dtype=object)
    return [c + vectors[i] @ z for i, c in enumerate(central)]


def write_pyerrors(path, central, cov, description: str) -> Path:
    """One array of correlated Obs in pyerrors' JSON, gzipped, to ``path``, atomically."""
    import pyerrors
    text = pyerrors.input.json.create_json_string([np.array(pyerrors_obs(central, cov))], description)
    with atomic_output(path) as tmp:
        with gzip.open(tmp, "wb") as out:
            out.write(text.encode("utf-8"))
    return Path(path)


def load_gvar(path):
    """The correlated gvars of a file written by ``write_gvar`` (gvar's own reader)."""
    import gvar
    return gvar.load(str(path))


def load_pyerrors(path) -> list:
    """The Obs of a file written by ``write_pyerrors`` (pyerrors' own reader), gamma method applied."""
    import pyerrors
    obs = list(pyerrors.input.json.load_json(str(path), verbose=False))   # one array: returned as is
    for o in obs:
        o.gamma_method()
    return obs
