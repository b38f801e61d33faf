"""The result files of stage 4 (method §10): the budget of one input and σ as
``results/{mock}_sigma{σ}_budget.csv``, ``.json`` and ``.hdf5`` -- their only writer and reader.

The table's columns are one ordered list built from named groups (``COLUMN_GROUPS``): the paper's
(always), the prior systematic's (with Nref_prior in the audience, method §8 "Beyond the paper") and
the mock's (with a truth).  A new group is one more entry, at its place in the order.
- CSV (pandas): the columns; NaN written as ``nan``.
- JSON: one object per σ: every column (NaN as null), the samples (kind, number, origin, n_boot:
  prediction_files.py), the settings (the analysis' own and each prediction file's) and the provenance.
- HDF5: every column, plus total_known_components, the Δ_X and σ_ΔX (``delta_X``,
  ``delta_error_X``), each ensemble's own central, stat and rep, the pulls (mocks), the
  covariance over energies of each error and of each of its terms (``covariance/<name>``
  [N_E, N_E], covariance.result_covariances) with the correlation matrix of each error
  (``correlation/<name>``), and the provenance with the ``fingerprint`` that says what the files
  were made of (``up_to_date``).
- JSON: besides, ``covariance``: {error: N_E × N_E nested lists (NaN as null)} for each error
  column (``total``, ``total_with_prior``, ``total_calibrated`` and the other centres'
  ``total_calibrated_<centre>``), and the convention in ``covariance_convention``.
The calibrated group (with a calibration file, analysis.py) holds the calibrated result of the
recommended centre (preset key ``calibrated_centre``), each other centre's under names of its own
(``central_calibrated_<centre>``, ``post_<centre>``, ``total_calibrated_<centre>``; the interval
networks' centres only with them), and ``total_scaled``; the files then record the calibration
file used (attribute / key ``calibration``: its path, SHA-256 and the recommended centre).
"""
from __future__ import annotations

import json

import h5py
import numpy as np
import pandas as pd

import budget as bud
from calibration import CENTRES, result_centres
from covariance import CONVENTION, correlation
from io_utils import atomic_output, provenance, recorded_fingerprint, write_attrs
from prediction_files import PredictionSet

# The table's column groups, in the table's order.
COLUMN_GROUPS = {
    "paper": ("E", "central", "stat", "rep", "sys_b", "sys_rho", "sys_n", "total"),   # method §8, §10
    "prior": ("sys_prior", "total_with_prior"),    # method §8 "Beyond the paper": after total
    # with a calibration: the recommended centre's calibrated result, each other centre's under names
    # of its own (OTHER_CENTRES: its three columns with the suffix _<centre>), the baseline S·σ_tot
    "calibrated": ("central_calibrated", "post", "total_calibrated", "OTHER_CENTRES", "total_scaled"),
    "mock": ("truth", "closure_level"),            # mocks only: the exact truth, how it was measured
}
OTHER_CENTRES = "OTHER_CENTRES"
SUFFIXES = ("budget.hdf5", "budget.csv", "budget.json")
# the error columns whose covariance the JSON carries
ERRORS = ("total", "total_with_prior", "total_calibrated", *(f"total_calibrated_{c}" for c in CENTRES))


def budget_columns(*groups: str, centres=CENTRES[:1]) -> list[str]:
    """The table's columns: the paper's, then those of ``groups``, in the order of COLUMN_GROUPS
    (``centres``: those of the calibrated group, the recommended one first: calibration.result_centres)."""
    unknown = set(groups) - set(COLUMN_GROUPS)
    if unknown:
        raise ValueError(f"column groups {sorted(unknown)}: expected some of {list(COLUMN_GROUPS)}")
    others = [f"{name}_{c}" for c in centres[1:] for name in COLUMN_GROUPS["calibrated"][:3]]
    return [column for name, columns in COLUMN_GROUPS.items() if name == "paper" or name in groups
            for c in columns for column in (others if c == OTHER_CENTRES else [c])]


def expected_groups(cfg, mock: bool) -> tuple[str, ...]:
    """The column groups of a budget table with this preset: prior (prior_systematic), calibrated
    (always: the pipeline calibrates every audience), mock (a truth)."""
    return (("prior",) if cfg["prior_systematic"] else ()) + ("calibrated",) + (("mock",) if mock else ())


def result_paths(cfg, mock: str, sigma_gev: float) -> list:
    """The HDF5, CSV and JSON files of one input and σ."""
    return [cfg.results_file(mock, sigma_gev, suffix) for suffix in SUFFIXES]


def budget_frame(b: bud.Budget, s: PredictionSet, calibrated: dict | None = None, centres=CENTRES[:1]
                 ) -> pd.DataFrame:
    """The method §10 table: E, central, stat, rep, sys_b, sys_rho, sys_n, total (, sys_prior,
    total_with_prior with the prior systematic) (, the calibrated group: ``calibrated`` {column:
    [N_E]} of the ``centres``, the recommended one first) (, truth, closure_level)."""
    groups = ((("prior",) if b.has_prior else ()) + (("calibrated",) if calibrated else ())
              + (("mock",) if s.truth is not None else ()))

    def column(name):
        if name == "E":
            return s.energies
        if name == "truth":
            return s.truth
        if name == "closure_level":
            return np.full(len(s.energies), s.closure_level)
        if calibrated and name in calibrated:
            return calibrated[name]
        return b.component(name)
    return pd.DataFrame({name: column(name) for name in budget_columns(*groups, centres=centres)})


def _finite_or_none(values) -> list:
    return [None if not np.isfinite(v) else float(v) for v in values]


def budget_record(cfg, s: PredictionSet, frame: pd.DataFrame, covariances: dict, record: dict) -> dict:
    """The budget of one σ as one JSON object: every column of the table (energies, central,
    each component, total, ...; NaN as null), the covariance of each error column, the settings
    (the analysis' own, and each prediction file's) and the provenance ``record``."""
    settings = {"analysis": json.loads(record.pop("config")),
                "prediction_files": json.loads(record.pop("prediction_config"))}
    for key in ("overrides", "package_versions", "prediction_files", "warnings", "calibration", "input_check"):
        if key in record:
            record[key] = json.loads(record[key])
    columns = {c: _finite_or_none(frame[c]) for c in frame.columns}
    cov = {e: [_finite_or_none(row) for row in covariances[e]] for e in ERRORS if e in covariances}
    return {"name": s.mock, "sigma_gev": float(s.sigma_gev), "sigma": float(cfg.sigma(s.sigma_gev)),
            "energy_unit": "lattice units (1/a); sigma_gev converted with a_inv_gev = "
                           f"{cfg['a_inv_gev']}", "sample_kind": s.kind, "n_samples": len(s.samples),
            "sample_origin": s.origin, "n_boot": s.n_boot, "n_energies": len(frame),
            "columns": list(frame.columns), **columns, "covariance": cov, "covariance_convention": CONVENTION,
            "settings": settings, "provenance": record}


def write_results(cfg, s: PredictionSet, b: bud.Budget, covariances: dict, settings: dict, summary: str,
                  made_of: str, calibrated: dict | None = None, calibration: dict | None = None) -> list:
    """CSV, JSON and HDF5 of the budget and its ``covariances`` ({name: [N_E, N_E]}), atomically,
    recording the analysis' ``settings``, the ``summary`` line and the fingerprint ``made_of``; with
    the ``calibrated`` columns, the ``calibration`` used ({file, sha256, centre}); returns the paths written."""
    frame = budget_frame(b, s, calibrated, result_centres(cfg))
    level = {} if s.closure_level is None else {"closure_level": int(s.closure_level)}
    if calibration:
        level["calibration"] = json.dumps(calibration, sort_keys=True)
    record = provenance(cfg, config=json.dumps(settings, sort_keys=True), overrides=json.dumps(settings["overrides"]),
                        prediction_config=json.dumps(s.made_with, sort_keys=True),
                        mock=s.mock, sigma_gev=s.sigma_gev, sample_kind=s.kind, n_samples=len(s.samples),
                        sample_origin=s.origin, n_boot=s.n_boot, **level,
                        prediction_files=json.dumps(s.files), warnings=json.dumps(b.warnings),
                        input_check=json.dumps(s.input_checks, sort_keys=True),
                        summary=summary, fingerprint=made_of)
    h5_path, csv_path, json_path = result_paths(cfg, s.mock, s.sigma_gev)
    with atomic_output(csv_path) as tmp:
        frame.to_csv(tmp, index=False, na_rep="nan", float_format="%.10g")
    with atomic_output(json_path) as tmp:
        with open(tmp, "w") as out:
            json.dump(budget_record(cfg, s, frame, covariances, dict(record)), out, indent=1, allow_nan=False)
            out.write("\n")
    with atomic_output(h5_path) as tmp:
        with h5py.File(tmp, "w") as h5:
            for column in frame.columns:
                h5[column] = frame[column].to_numpy()
            h5["total_known_components"] = b.total_known
            for name in b.deltas:        # the Σ_X, and sys_prior with the prior systematic
                h5[f"delta_{name[4:]}"] = b.deltas[name]
                h5[f"delta_error_{name[4:]}"] = b.delta_errors[name]
            for ens, values in b.ensembles.items():
                for key, value in values.items():
                    h5[f"ensembles/{ens}/{key}"] = value
            for name, cov in covariances.items():
                h5[f"covariance/{name}"] = cov
                if name in ERRORS:
                    h5[f"correlation/{name}"] = correlation(cov)
            h5["covariance"].attrs["convention"] = CONVENTION
            if s.truth is not None:
                h5["pulls"] = bud.pulls(b.central, s.truth, b.total)
                if b.has_prior:
                    h5["pulls_with_prior"] = bud.pulls(b.central, s.truth, b.total_with_prior)
            write_attrs(h5, record)
    return [csv_path, json_path, h5_path]


def up_to_date(cfg, mock: str, sigma_gev: float, made_of: str) -> bool:
    """Whether the three files exist and the HDF5 records the fingerprint ``made_of``."""
    paths = result_paths(cfg, mock, sigma_gev)
    return recorded_fingerprint(paths[0]) == made_of and all(p.is_file() for p in paths)


def read_covariances(path) -> dict:
    """{name: covariance [N_E, N_E]} of a budget HDF5 file."""
    with h5py.File(path, "r") as h5:
        return {name: h5["covariance"][name][()] for name in h5["covariance"]}


def read_budget_json(path) -> dict:
    """The JSON object of one σ (``budget_record``)."""
    with open(path) as source:
        return json.load(source)


def budget_table_problem(cfg, path) -> str | None:
    """What is wrong with a mock's budget table (its columns with this preset, one finite row per
    energy), or None."""
    table = pd.read_csv(path)
    expected = budget_columns(*expected_groups(cfg, mock=True), centres=result_centres(cfg))
    if list(table.columns) != expected:
        return f"columns {list(table.columns)}, expected {expected}"
    if len(table) != cfg["n_energies"] or not np.isfinite(table.to_numpy()).all():
        return f"expected {cfg['n_energies']} rows of finite values"
    return None
