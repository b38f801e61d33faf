"""The result as correlated objects of the users' own libraries: gvar and pyerrors files.

The only writer of these two formats; each is written by the library itself and read back by it.
A file holds a dictionary with one entry per error of the result -- ``total`` (the paper's σ_tot),
``total_with_prior`` with the prior systematic, ``total_calibrated`` with the calibrated error (around
its own centre, central_calibrated) -- each an array of N_E correlated values of
ρ_σ(E) with that error's covariance over the energies (covariance.py).  Each entry is one complete
result; the entries are alternatives, not independent measurements, so never combine two.

- ``{name}_sigma{σ}_result.gvar``: ``gvar.dump`` of {error: ``gvar.gvar(central, cov)``}.  Load it
  with ``gvar.load(path)``: a dictionary of arrays of correlated gvars (``gvar.evalcov``,
  ``gvar.evalcorr``; any function of them carries the right error).
- ``{name}_sigma{σ}_result.json.gz``: pyerrors' JSON dictionary (``dump_dict_to_json``) of
  {error: array of Obs}.  Load it with ``pyerrors.input.json.load_json_dict(path)`` and call
  ``gamma_method()`` on the Obs before asking for errors.  The Obs are built with pyerrors' own
  constructors from the covariance's eigen-decomposition, Cov = V diag(λ) Vᵀ: N_E independent Obs
  z_j with variances λ_j (``cov_Obs``; negative round-off eigenvalues of the nearly singular
  matrix set to 0) and ρ = c + V z in one ``derived_observable`` call whose Jacobian is V itself
  (``man_grad``), so they carry exactly the covariance, without a ridge and without N_E² derived
  observables built one sum at a time; each error's directions have their own name
  (``rho_sigma_<error>``).

Both packages are optional (requirements-formats.txt); ``available()`` says which are installed.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np

from io_utils import atomic_output

PACKAGES = ("gvar", "pyerrors")
SUFFIXES = {"gvar": "result.gvar", "pyerrors": "result.json.gz"}
HOW_TO_LOAD = {"gvar": "gvar.load(path)[error]",
               "pyerrors": "pyerrors.input.json.load_json_dict(path)[error], then gamma_method() on each Obs"}


def available() -> list[str]:
    """The export packages that are installed."""
    return [name for name in PACKAGES if importlib.util.find_spec(name) is not None]


def _checked(central, covariances: dict) -> tuple[dict, dict]:
    """({error: central}, {error: symmetrised covariance}); ``central`` is one array [N_E] for every
    error, or {error: [N_E]} when an error has a centre of its own (the calibrated result's)."""
    centrals = {e: np.asarray(central[e] if isinstance(central, dict) else central, dtype=np.float64)
                for e in covariances}
    out = {}
    for error, cov in covariances.items():
        c = centrals[error]
        cov = np.asarray(cov, dtype=np.float64)
        if cov.shape != (len(c), len(c)) or not (np.all(np.isfinite(c)) and np.all(np.isfinite(cov))):
            raise ValueError(f"the covariance of {error} is incomplete (NaN: a component of the error "
                             "could not be computed) or has the wrong shape: no correlated export")
        out[error] = 0.5 * (cov + cov.T)
    return centrals, out


def write_gvar(path, central, covariances: dict) -> Path:
    """gvar.dump({error: gvar.gvar(central, cov)}) to ``path``, atomically (``central``: one array,
    or one per error)."""
    import gvar
    central, covariances = _checked(central, covariances)
    with atomic_output(path) as tmp:
        gvar.dump({error: gvar.gvar(central[error], cov) for error, cov in covariances.items()}, str(tmp))
    return Path(path)


def pyerrors_obs(central, cov, name: str) -> np.ndarray:
    """N_E correlated pyerrors Obs with the given means and covariance (see the module docstring)."""
    import pyerrors
    values, vectors = np.linalg.eigh(cov)
    z = np.array(pyerrors.cov_Obs([0.0] * len(values), np.clip(values, 0.0, None), name), dtype=object).reshape(-1)
    central = np.asarray(central, dtype=np.float64)
    return pyerrors.derived_observable(lambda x, **_: central + vectors @ x, z, man_grad=vectors)


def write_pyerrors(path, central, covariances: dict, description: str) -> Path:
    """{error: array of correlated Obs} in pyerrors' JSON (gzipped) to ``path``, atomically (``central``:
    one array, or one per error)."""
    import pyerrors
    central, covariances = _checked(central, covariances)
    obs = {error: pyerrors_obs(central[error], cov, f"rho_sigma_{error}") for error, cov in covariances.items()}
    with atomic_output(path) as tmp:
        written = Path(f"{tmp}.json.gz")           # pyerrors appends its suffix to the name given
        try:
            pyerrors.input.json.dump_dict_to_json(obs, str(tmp), description=description)
            os.replace(written, tmp)
        finally:
            written.unlink(missing_ok=True)
    return Path(path)


def load_gvar(path) -> dict:
    """{error: correlated gvars} of a file written by ``write_gvar`` (gvar's own reader)."""
    import gvar
    return dict(gvar.load(str(path)))


def load_pyerrors(path) -> dict:
    """{error: list of Obs} of a file written by ``write_pyerrors`` (pyerrors' own reader), the
    gamma method applied."""
    import pyerrors
    loaded = pyerrors.input.json.load_json_dict(str(path), verbose=False)
    for obs in loaded.values():
        for o in obs:
            o.gamma_method()
    return {error: list(obs) for error, obs in loaded.items()}
