"""Configuration in one place: named presets, command-line overrides, file paths and the
Slurm array-index -> task mappings shared by the scripts, the Slurm jobs and the local runner.

Every script takes ``--preset NAME`` (default ``reference``), ``--set KEY=VALUE`` (repeatable;
dotted keys reach into nested tables, values are parsed as JSON when they parse, else kept as
strings) and ``--root DIR`` (default: the current directory).  SPEC §10.

Units: lattice units (1/a) everywhere, except the keys ending in ``_gev`` (the energy grid and the
smearing widths, as the paper states them), which are converted once, here, with ``a_inv_gev``.

Shell scripts never copy a constant from here; they ask:
    python config.py --preset demo array-size generation    ->  number of generation tasks
    python config.py --preset demo array-size training      ->  number of training runs
    python config.py --preset demo get n_replicas           ->  any resolved value
    python config.py --preset demo group-range 2            ->  training task ids of group 2 ('6-8')
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from cli import main_guard
from io_utils import UserError
from sigma_model_utils import KERNELS, SPACES

AUDIENCE_SPACES = ("chebyshev", "physical", "mixture")     # the `space` a whole audience may train on

M_MUON_GEV = 0.10566  # SPEC §5: the energy grid is linspace(m_mu, 24 m_mu, 47)
# SPEC §7: the noise a replica trains on (replica_streams.py): its own noise instance, the training
# file's shared copies, or new noise every epoch
NOISE_MODES = ("replica", "stored", "fresh")
# SPEC §6: the channels (c1, c2) of each network architecture an ensemble may name
ARCHITECTURES = {"arcS": (16, 32), "arcM": (32, 64), "arcL": (64, 128)}

_REFERENCE = {
    # SPEC §2: geometry and kernel
    "kernel": "rratio",            # laplace | periodic | rratio | thermal
    "T": 64,                       # full temporal extent (1/temperature for `thermal`)
    "t_min": 1,                    # first input time slice (t = 0 is never an input)
    "t_max": 32,                   # last input time slice
    "a_inv_gev": 1.0,              # 1/a in GeV, converts the *_gev keys below
    # SPEC §5: targets
    "energy_min_gev": M_MUON_GEV,
    "energy_max_gev": 24 * M_MUON_GEV,
    "n_energies": 47,
    "sigmas_gev": [0.44, 0.63],
    # SPEC §3: the Chebyshev training space
    "E0_min": 0.2,
    "E0_max": 1.3,
    "epsilon": 1e-7,
    "nb_list": [16, 32, 64, 128],
    "nrho_list": [25_000, 50_000, 100_000, 200_000, 400_000],
    # the training space of the whole audience: chebyshev (the paper's Chebyshev space), physical (the
    # physical space P, physical_space.py) or mixture (half each, training_sets.py)
    "space": "chebyshev",
    # SPEC §8 "Beyond the paper": the prior systematic, off by default (the paper's budget).
    # On, it adds the ensemble Nref_prior (Nmax's network, N_b and N_rho, derived from Nmax in
    # load_config) trained on a second space, ``prior_space``: the Chebyshev construction of
    # SPEC §3 with x(E) = 1 - 2 exp(-E / x_scale) and its own E0 range and ε; chosen by
    # measurement: the same map, thresholds E0 ~ U(0.05, 2.5) (README, "The prior systematic").
    # ``prior_space="physical"`` trains Nref_prior on the physical space P instead.
    "prior_systematic": False,
    "prior_space": {"x_scale": 1.0, "E0_min": 0.05, "E0_max": 2.5, "epsilon": 1e-7},
    # SPEC §4: noise
    "noise_file": "data/standin_baryon_T64.h5",
    "n_noise": 20,
    # reproducibility: every random stream derives from (seed, purpose, ...) -- see rng_for()
    "seed": 20230703,
    "rng_block": 1000,             # samples per independent random block (fixes the stream)
    # SPEC §6: networks and training
    "leaky_slope": 0.2,
    "weight_std": 0.05,
    "lr": 2e-4,
    "batch_size": 32,
    "lr_decay_start": 25,
    "lr_decay_rate": 4e-4,
    "max_epochs": 200,
    "patience": 15,
    "min_delta": 1e-5,
    "val_fraction": 0.2,
    "noise": "replica",            # NOISE_MODES: each replica's own N_noise copies (SPEC §7)
    # CUDA only: TF32 (10-bit mantissa) in float32 matrix products and convolutions; off = IEEE
    # float32, the same numbers as the CPU's within round-off (devices.select_device)
    "tf32": False,
    # SPEC §7: the broad audience
    "n_replicas": 5,
    "ensembles": {
        "Nmax": {"arch": "arcL", "nb": 128, "nrho": 400_000},
        "Nref_b": {"arch": "arcL", "nb": 16, "nrho": 400_000},
        "Nref_n": {"arch": "arcS", "nb": 128, "nrho": 400_000},
        "Nref_rho": {"arch": "arcL", "nb": 128, "nrho": 25_000},
    },
    # SPEC §8-9: prediction and validation mocks
    "n_boot": 800,
    "closure_level": 1,        # 1: each mock is measured once, samples drawn around C̄ (closure.py);
                               # 0: samples around the exact C -- a labelled diagnostic only
    "closure_repetition": 0,   # which seeded measurement of the mocks (level 1): 0, 1, 2, ...
    "o3_threshold": 1.0,
    "delta_A": 1.5,
    "delta_M": 0.8,
    "delta_B": 0.5,     # continuum height (our choice, documented in README)
    "delta_Ec": 1.6,    # continuum onset: 2 x M, a two-particle-like threshold (our choice)
    "delta_w": 0.2,     # continuum rise width (our choice)
}


def _derived(base: dict, **changes) -> dict:
    out = copy.deepcopy(base)
    for key, value in changes.items():
        out[key] = value
    return out


PRESETS = {
    "reference": _REFERENCE,
    # small enough that the whole pipeline runs on 2 CPU cores in minutes (README, "The two
    # commands", gives the measured wall time); with n_noise=4 and 30 epochs the training alone
    # would take 3x as long
    "demo": _derived(
        _REFERENCE,
        nb_list=[16, 128],
        nrho_list=[2000, 8000],
        n_noise=2,
        max_epochs=20,
        patience=8,
        n_replicas=3,
        n_boot=200,
        ensembles={
            "Nmax": {"arch": "arcL", "nb": 128, "nrho": 8000},
            "Nref_b": {"arch": "arcL", "nb": 16, "nrho": 8000},
            "Nref_n": {"arch": "arcS", "nb": 128, "nrho": 8000},
            "Nref_rho": {"arch": "arcL", "nb": 128, "nrho": 2000},
        },
    ),
    # for tests and the CI Slurm run: seconds, not physics
    "tiny": _derived(
        _REFERENCE,
        nb_list=[16, 32],
        nrho_list=[200, 400],
        n_noise=2,
        rng_block=100,
        max_epochs=3,
        patience=2,
        n_replicas=2,
        n_boot=40,
        ensembles={
            "Nmax": {"arch": "arcL", "nb": 32, "nrho": 400},
            "Nref_b": {"arch": "arcL", "nb": 16, "nrho": 400},
            "Nref_n": {"arch": "arcS", "nb": 32, "nrho": 400},
            "Nref_rho": {"arch": "arcL", "nb": 32, "nrho": 200},
        },
    ),
}
# the demo with the prior systematic (SPEC §8): one more ensemble, Nref_prior
PRESETS["demo_prior"] = _derived(PRESETS["demo"], prior_systematic=True)

PRIOR_ENSEMBLE = "Nref_prior"      # the ensemble of the prior systematic (budget.PRIOR_SYSTEMATIC)


class ConfigError(UserError):
    """A preset name, an override or a resolved value that cannot be used."""


class Config(dict):
    """The resolved preset: a plain dict of values (``cfg["T"]``), plus where it came from and
    derived grids.  ``cfg.preset``, ``cfg.overrides`` and ``cfg.root`` record how it was made;
    ``cfg.to_json()`` is what every output file stores.
    """

    def __init__(self, values: dict, preset: str, overrides: list[str], root: Path):
        super().__init__(values)
        self.preset = preset
        self.overrides = list(overrides)
        self.root = Path(root)

    # --- derived quantities (lattice units) ---------------------------------------------
    @property
    def t(self) -> np.ndarray:
        """Input time slices t_min..t_max (SPEC §2)."""
        return np.arange(self["t_min"], self["t_max"] + 1, dtype=np.float64)

    @property
    def n_t(self) -> int:
        return self["t_max"] - self["t_min"] + 1

    @property
    def energies(self) -> np.ndarray:
        """The N_E target energies E_k in lattice units (SPEC §5)."""
        return np.linspace(self["energy_min_gev"], self["energy_max_gev"],
                           self["n_energies"]) / self["a_inv_gev"]

    def sigma(self, sigma_gev: float) -> float:
        """A smearing width of ``sigmas_gev`` in lattice units."""
        return float(sigma_gev) / self["a_inv_gev"]

    def options(self) -> list[str]:
        """--preset, --set ..., --root: how any script is told to use this configuration."""
        options = ["--preset", self.preset, "--root", str(self.root)]
        for item in self.overrides:
            options += ["--set", item]
        return options

    def command(self, script: str, *arguments) -> str:
        """The shell command that runs ``script`` with this configuration (for repair messages)."""
        preset, rest = self.options()[:2], self.options()[2:]
        return shlex.join(["python", script, *preset, *map(str, arguments), *rest])

    def to_json(self) -> str:
        return json.dumps({"preset": self.preset, "overrides": self.overrides,
                           "values": dict(self)}, sort_keys=True)

    def values_json(self) -> str:
        """The resolved values alone: two files made with equal values are interchangeable."""
        return json.dumps(dict(self), sort_keys=True)

    # --- paths (SPEC §10) -----------------------------------------------------------------
    def path(self, relative: str | Path) -> Path:
        return self.root / relative

    def input_path(self, relative: str | Path) -> Path:
        """An input file: under --root if it is there, else the copy shipped in this repository
        (e.g. the stand-in noise file data/standin_baryon_T64.h5), else the --root path (which
        the reader then reports as missing)."""
        under_root = self.root / relative
        shipped = Path(__file__).resolve().parent / relative
        return under_root if under_root.exists() or not shipped.exists() else shipped

    def training_file(self, nb: int | None, nrho: int, space: str = "chebyshev") -> Path:
        """The training file; the other spaces have their own names, the physical space's
        without N_b (it has no basis: ``nb`` is ignored)."""
        name = {"chebyshev": f"Nb{nb}", "physical": "physical"}.get(space, f"{space}_Nb{nb}")
        return self.root / f"training_datasets_T{self.n_t}" / f"training_data_{name}_Nrho{nrho}.hdf5"

    def model_dir(self, sigma_gev: float, ensemble: str) -> Path:
        return self.root / f"trained_models_sigma{sigma_tag(sigma_gev)}" / ensemble

    def checkpoint(self, sigma_gev: float, ensemble: str, replica: int) -> Path:
        return self.model_dir(sigma_gev, ensemble) / f"replica_{replica}_best.pth"

    def state_path(self, sigma_gev: float, ensemble: str, replica: int) -> Path:
        """The resumable training state of a replica (checkpoints.save_state)."""
        return self.model_dir(sigma_gev, ensemble) / f"replica_{replica}_state.pth"

    def history_path(self, sigma_gev: float, ensemble: str, replica: int) -> Path:
        return self.model_dir(sigma_gev, ensemble) / f"replica_{replica}_best_history.csv"

    def replica_lock(self, sigma_gev: float, ensemble: str, replica: int) -> Path:
        """Held by the one process training this replica (io_utils.task_lock); the lock files live
        in locks/ under --root, beside no output."""
        return self.root / "locks" / f"training_sigma{sigma_tag(sigma_gev)}_{ensemble}_replica_{replica}.lock"

    def generation_lock(self, nb: int, space: str = "chebyshev") -> Path:
        """Held by the one process generating the training files of this N_b and space."""
        name = "physical" if space == "physical" else f"{space}_Nb{nb}"
        return self.root / "locks" / f"generation_T{self.n_t}_{name}.lock"

    def prediction_file(self, mock: str, ensemble: str, sigma_gev: float) -> Path:
        return (self.root / f"mock_predictions_sigma{sigma_tag(sigma_gev)}"
                / f"{mock}_predictions_{ensemble}_sigma{sigma_gev}.hdf5")

    def results_file(self, mock: str, sigma_gev: float, suffix: str) -> Path:
        return self.root / "results" / f"{mock}_sigma{sigma_gev}_{suffix}"

    def mock_file(self, mock: str) -> Path:
        """A validation mock's exact correlator, noise covariance and truths (generate_delta_mock.py)."""
        return self.root / "mocks" / f"{mock}_mock.hdf5"


def target_key(sigma_gev: float) -> str:
    """The training-file dataset of the smeared targets for σ as written in the preset (SPEC §10)."""
    return f"clean_smeared_rho_sigma_{sigma_gev}"


def sigma_tag(sigma_gev: float) -> int:
    """The directory tag 100·σ of SPEC §10 (0.44 -> 44)."""
    return int(round(100 * float(sigma_gev)))


# --- array index -> task mappings (the only place they are defined) -------------------------
def ensemble_space(cfg: Config, ensemble: str) -> str:
    """The training space of an ensemble: ``chebyshev`` (the paper's) unless the ensemble names
    another (load_config writes the preset's ``space`` into every ensemble when it is not
    chebyshev, and Nref_prior's from ``prior_space``)."""
    return cfg["ensembles"][ensemble].get("space", "chebyshev")


def generation_tasks(cfg: Config) -> list[tuple[str, int | None]]:
    """Slurm array index i of the generation stage -> the (space, N_b) it generates: with the
    paper's training space one task per N_b of the Chebyshev space, then one per N_b that the
    ensembles of each other space use (one task without N_b for the physical space)."""
    tasks = [("chebyshev", nb) for nb in cfg["nb_list"]] if cfg["space"] == "chebyshev" else []
    for space in SPACES[1:]:
        nbs = sorted({ens["nb"] for name, ens in cfg["ensembles"].items() if ensemble_space(cfg, name) == space})
        tasks += [(space, None)] if space == "physical" and nbs else [(space, nb) for nb in nbs]
    return tasks


def generated_nrhos(cfg: Config, space: str) -> list[int]:
    """The N_ρ of the files a generation task writes: every nrho_list entry for the Chebyshev
    space, only what the ensembles use for the others (prefixes of one stream either way)."""
    if space == "chebyshev":
        return list(cfg["nrho_list"])
    return sorted({ens["nrho"] for name, ens in cfg["ensembles"].items() if ensemble_space(cfg, name) == space})


def training_tasks(cfg: Config) -> list[tuple[str, int, float]]:
    """Slurm array index i of the training stage -> (ensemble, replica, σ).

    i = (σ_index · N_ensembles + ensemble_index) · N_r + replica, so the replicas of one
    (ensemble, σ) are a contiguous range of indices and can be trained in one batched process.
    """
    return [(ens, r, s) for s in cfg["sigmas_gev"] for ens in cfg["ensembles"]
            for r in range(cfg["n_replicas"])]


def training_groups(cfg: Config) -> list[tuple[str, float, list[int]]]:
    """The (ensemble, σ) groups of training_tasks(), each with its task indices."""
    n_r = cfg["n_replicas"]
    tasks = training_tasks(cfg)
    return [(tasks[g * n_r][0], tasks[g * n_r][2], list(range(g * n_r, (g + 1) * n_r)))
            for g in range(len(tasks) // n_r)]


def parse_index_range(text: str) -> list[int]:
    """'3' -> [3]; '0-4' -> [0, 1, 2, 3, 4]; '0,2,5-6' -> [0, 2, 5, 6]."""
    out: list[int] = []
    for part in str(text).split(","):
        lo, _, hi = part.partition("-")
        try:
            out.extend(range(int(lo), int(hi or lo) + 1))
        except ValueError:
            raise ConfigError(f"cannot read index range {text!r}: expected e.g. 3, 0-4 or 0,2,5-6") from None
    return out


# --- resolving a preset -----------------------------------------------------------------------
def _parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _apply_override(values: dict, item: str) -> None:
    key, sep, raw = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
    parts = key.split(".")
    node = values
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            raise ConfigError(f"--set {item!r}: {part!r} is not a table of the preset")
        node = node[part]
    if parts[-1] not in node:
        known = ", ".join(sorted(node))
        raise ConfigError(f"--set {item!r}: unknown key {key!r}; known keys: {known}")
    node[parts[-1]] = _parse_value(raw)


# --- the schema: type, range and meaning of every setting ------------------------------------------
@dataclass(frozen=True)
class Setting:
    """One preset key: its type ('int', 'float', 'str', 'int list', 'float list', 'ensembles'),
    the range its values must lie in (a predicate and the words for it) and what it means."""
    kind: str
    meaning: str
    expected: str = ""
    valid: Callable[[object], bool] = lambda value: True


def _positive(x) -> bool:
    return x > 0


def _at_least(n):
    return lambda x: x >= n


SCHEMA = {
    "kernel": Setting("str", "kernel b(t, ω) of SPEC §2", f"one of {KERNELS}", lambda k: k in KERNELS),
    "T": Setting("int", "temporal extent of the lattice, 1/temperature for the thermal kernel", ">= 2", _at_least(2)),
    "t_min": Setting("int", "first input time slice", ">= 1 (t = 0 is never an input)", _at_least(1)),
    "t_max": Setting("int", "last input time slice", "> t_min", _at_least(2)),
    "a_inv_gev": Setting("float", "inverse lattice spacing 1/a in GeV", "> 0", _positive),
    "energy_min_gev": Setting("float", "lowest target energy (GeV)", "> 0", _positive),
    "energy_max_gev": Setting("float", "highest target energy (GeV)", "> energy_min_gev", _positive),
    "n_energies": Setting("int", "number of target energies N_E", ">= 2", _at_least(2)),
    "sigmas_gev": Setting("float list", "smearing widths σ (GeV)", "a non-empty list of widths >= 0.005 "
                          "(the directory tag 100·σ must be >= 1)", lambda s: len(s) > 0 and all(
                              x > 0 and sigma_tag(x) >= 1 for x in s)),
    "E0_min": Setting("float", "lowest onset E0 of the training densities", "> 0", _positive),
    "E0_max": Setting("float", "highest onset E0 of the training densities", "> E0_min", _positive),
    "epsilon": Setting("float", "decay exponent ε of the Chebyshev coefficients", ">= 0", _at_least(0)),
    "nb_list": Setting("int list", "numbers N_b of Chebyshev basis functions generated",
                       "a non-empty list of distinct integers >= 1",
                       lambda s: len(s) > 0 and min(s) >= 1 and len(set(s)) == len(s)),
    "nrho_list": Setting("int list", "training-set sizes N_ρ generated (prefixes of one stream)",
                         "a non-empty, strictly increasing list of integers >= 2",
                         lambda s: len(s) > 0 and s[0] >= 2 and all(a < b for a, b in zip(s, s[1:]))),
    "noise_file": Setting("str", "noise file (mean, cov, t; SPEC §4), relative to --root or the repository",
                          f"the path of a noise file (the default {_REFERENCE['noise_file']}, or one made "
                          "by make_noise_file.py)", lambda p: p.strip() != ""),
    "prior_systematic": Setting("bool", "whether the prior systematic Σ_prior is computed (ensemble "
                                "Nref_prior, SPEC §8)"),
    "space": Setting("str", "the training space of the whole audience (default chebyshev, the paper's)",
                     f"one of {AUDIENCE_SPACES}", lambda s: s in AUDIENCE_SPACES),
    "prior_space": Setting("prior space", "the second training space of Nref_prior: a table {x_scale, E0_min, "
                           "E0_max, epsilon} (the Chebyshev construction with these parameters; default the "
                           "wide-E0 one) or \"physical\" (the physical space P)"),
    "tf32": Setting("bool", "CUDA only: TF32 in float32 matrix products and convolutions (off: IEEE float32)"),
    "noise": Setting("str", "the noise a replica trains on (SPEC §7)", f"one of {NOISE_MODES}",
                     lambda m: m in NOISE_MODES),
    "n_noise": Setting("int", "noisy copies N_noise per training sample", ">= 1", _at_least(1)),
    "seed": Setting("int", "seed from which every random stream derives", ">= 0", _at_least(0)),
    "rng_block": Setting("int", "samples per independent random block", ">= 1", _at_least(1)),
    "leaky_slope": Setting("float", "negative slope of the LeakyReLU", ">= 0", _at_least(0)),
    "weight_std": Setting("float", "standard deviation of the initial weights", "> 0", _positive),
    "lr": Setting("float", "Adam learning rate", "> 0", _positive),
    "batch_size": Setting("int", "training batch size", ">= 1", _at_least(1)),
    "lr_decay_start": Setting("int", "first epoch index with a decayed learning rate", ">= 0", _at_least(0)),
    "lr_decay_rate": Setting("float", "learning-rate decay per epoch", ">= 0", _at_least(0)),
    "max_epochs": Setting("int", "most training epochs", ">= 1", _at_least(1)),
    "patience": Setting("int", "epochs without improvement before early stopping", ">= 1", _at_least(1)),
    "min_delta": Setting("float", "smallest validation-loss decrease that counts as improvement", ">= 0",
                         _at_least(0)),
    "val_fraction": Setting("float", "share of the clean samples held out for validation",
                            "strictly between 0 and 1", lambda f: 0 < f < 1),
    "n_replicas": Setting("int", "replicas N_r per ensemble", ">= 2 (the replica spread σ_rep needs two)",
                          _at_least(2)),
    "ensembles": Setting("ensembles", "the ensembles of the broad audience, SPEC §7"),
    "n_boot": Setting("int", "bootstrap samples N_boot of a test correlator",
                      ">= 2 (the statistical error needs two)", _at_least(2)),
    "closure_level": Setting("int", "how a mock is seen (closure.py)", "1 (measured mocks, the default) or 0 "
                             "(samples around the exact correlator, a diagnostic)", lambda v: v in (0, 1)),
    "closure_repetition": Setting("int", "which seeded measurement of the mocks (level 1)", ">= 0",
                                  _at_least(0)),
    "o3_threshold": Setting("float", "threshold E_th of the O(3) mock (lattice units)", "> 0", _positive),
    "delta_A": Setting("float", "weight A of the delta-tanh mock's peak", ">= 0", _at_least(0)),
    "delta_M": Setting("float", "position M of the delta-tanh mock's peak (lattice units)", "> 0", _positive),
    "delta_B": Setting("float", "height B of the delta-tanh mock's continuum", ">= 0", _at_least(0)),
    "delta_Ec": Setting("float", "onset E_c of the delta-tanh mock's continuum (lattice units)", "> 0",
                        _positive),
    "delta_w": Setting("float", "rise width w of the delta-tanh mock's continuum (lattice units)", "> 0",
                       _positive),
}

# the keys of one ensemble of the ``ensembles`` table
ENSEMBLE_SCHEMA = {
    "arch": Setting("str", "network architecture (SPEC §6)", f"one of {tuple(ARCHITECTURES)}",
                    lambda a: a in ARCHITECTURES),
    "nb": Setting("int", "N_b of its training set (one of nb_list)", ">= 1", _at_least(1)),
    "nrho": Setting("int", "N_ρ of its training set (one of nrho_list)", ">= 2", _at_least(2)),
    "space": Setting("str", "its training space (optional, default chebyshev)", f"one of {SPACES}",
                     lambda s: s in SPACES),
}
ENSEMBLE_OPTIONAL = ("space",)

# the keys of the ``prior_space`` table
PRIOR_SPACE_SCHEMA = {
    "x_scale": Setting("float", "energy scale of the map x(E) = 1 - 2 exp(-E / x_scale)", "> 0", _positive),
    "E0_min": Setting("float", "lowest onset of the prior space's densities", "> 0", _positive),
    "E0_max": Setting("float", "highest onset of the prior space's densities", "> prior_space.E0_min",
                      _positive),
    "epsilon": Setting("float", "decay exponent of the prior space's coefficients", ">= 0", _at_least(0)),
}

_TYPE_WORDS = {"int": "an integer", "float": "a finite number", "str": "a string", "bool": "true or false",
               "int list": "a list of integers", "float list": "a list of finite numbers",
               "ensembles": "a table label -> {arch, nb, nrho}",
               "prior space": 'a table {x_scale, E0_min, E0_max, epsilon} or "physical"'}


def _has_type(kind: str, value) -> bool:
    def is_int(x):
        return isinstance(x, int) and not isinstance(x, bool)

    def is_float(x):
        return (is_int(x) or isinstance(x, float)) and math.isfinite(x)

    if kind.endswith(" list"):
        one = is_int if kind == "int list" else is_float
        return isinstance(value, list) and all(one(x) for x in value)
    return {"int": is_int, "float": is_float, "str": lambda x: isinstance(x, str),
            "bool": lambda x: isinstance(x, bool), "ensembles": lambda x: isinstance(x, dict),
            "prior space": lambda x: isinstance(x, dict) or x == "physical"}[kind](value)


def _check_setting(name: str, setting: Setting, value) -> None:
    """One value against its Setting, or a ConfigError naming key, value, expectation and meaning."""
    if not _has_type(setting.kind, value) or not setting.valid(value):
        shown = float(value) if setting.kind == "float" and _has_type("float", value) else value
        words = _TYPE_WORDS[setting.kind]
        if not setting.expected:
            expected = words
        elif setting.expected[0].isalpha():      # a phrase of its own: "one of ...", "the path ..."
            expected = setting.expected
        else:                                    # a range: ">= 1"
            expected = f"{words} {setting.expected}"
        raise ConfigError(f"{name}={shown!r}: expected {expected} -- {setting.meaning}")


def _validate(cfg: Config) -> None:
    """Every key against SCHEMA, then the relations between keys; the first problem is a ConfigError."""
    unknown = sorted(set(cfg) - set(SCHEMA))
    if unknown:
        raise ConfigError(f"unknown keys {unknown}; known keys: {', '.join(sorted(SCHEMA))}")
    for name, setting in SCHEMA.items():
        if name not in cfg:
            raise ConfigError(f"{name} missing ({setting.meaning})")
        _check_setting(name, setting, cfg[name])
    for label, ens in cfg["ensembles"].items():
        required = set(ENSEMBLE_SCHEMA) - set(ENSEMBLE_OPTIONAL)
        if not isinstance(ens, dict) or not required <= set(ens) <= set(ENSEMBLE_SCHEMA):
            raise ConfigError(f"ensembles.{label} = {ens!r}: expected a table with the keys "
                              f"{sorted(required)} (and optionally {list(ENSEMBLE_OPTIONAL)})")
        for key in ens:
            _check_setting(f"ensembles.{label}.{key}", ENSEMBLE_SCHEMA[key], ens[key])
    prior = cfg["prior_space"]
    if isinstance(prior, dict):
        if set(prior) != set(PRIOR_SPACE_SCHEMA):
            raise ConfigError(f"prior_space = {prior!r}: expected the keys {list(PRIOR_SPACE_SCHEMA)}")
        for key, setting in PRIOR_SPACE_SCHEMA.items():
            _check_setting(f"prior_space.{key}", setting, prior[key])
        if not prior["E0_min"] < prior["E0_max"]:
            raise ConfigError(f"prior_space {prior}: expected E0_min < E0_max")
    if not cfg["t_min"] < cfg["t_max"]:
        raise ConfigError(f"time slices t_min={cfg['t_min']}, t_max={cfg['t_max']}: "
                          "expected 1 <= t_min < t_max (t = 0 is never an input, SPEC §2)")
    if cfg["kernel"] != "laplace" and cfg["t_max"] >= cfg["T"]:
        raise ConfigError(f"t_max={cfg['t_max']} must be below T={cfg['T']} for kernel {cfg['kernel']}")
    for low, high in (("E0_min", "E0_max"), ("energy_min_gev", "energy_max_gev")):
        if not cfg[low] < cfg[high]:
            raise ConfigError(f"{low}={cfg[low]}, {high}={cfg[high]}: expected {low} < {high}")
    for name, ens in cfg["ensembles"].items():
        if ens["nb"] not in cfg["nb_list"] or ens["nrho"] not in cfg["nrho_list"]:
            raise ConfigError(f"ensemble {name}: N_b={ens['nb']}, N_rho={ens['nrho']} is not among "
                              f"the generated sets nb_list={cfg['nb_list']}, nrho_list={cfg['nrho_list']}")
    if PRIOR_ENSEMBLE in cfg["ensembles"] and ensemble_space(cfg, PRIOR_ENSEMBLE) == ensemble_space(cfg, "Nmax"):
        raise ConfigError(f"prior_space={prior!r} with space={cfg['space']!r}: Nref_prior would train on "
                          "Nmax's own space; the prior systematic needs a second space")
    if len({sigma_tag(s) for s in cfg["sigmas_gev"]}) != len(cfg["sigmas_gev"]):
        raise ConfigError(f"sigmas_gev {cfg['sigmas_gev']}: two widths share a directory tag 100·σ")


def load_config(preset: str = "reference", overrides: list[str] | None = None,
                root: str | Path = ".") -> Config:
    """The resolved configuration: a preset, with ``KEY=VALUE`` overrides applied, validated."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; known presets: {', '.join(PRESETS)}")
    values = copy.deepcopy(PRESETS[preset])
    for item in overrides or []:
        _apply_override(values, item)
    ensembles = values.get("ensembles")
    if isinstance(ensembles, dict) and PRIOR_ENSEMBLE in ensembles:
        raise ConfigError(f"ensemble {PRIOR_ENSEMBLE} is derived from Nmax; turn it on with "
                          "--set prior_systematic=true instead of listing it")
    if values.get("prior_systematic") is True:    # SPEC §8: Nmax's network, N_b and N_rho
        if not isinstance(ensembles, dict) or not isinstance(ensembles.get("Nmax"), dict):
            raise ConfigError("prior_systematic=true needs the ensemble Nmax (Nref_prior is derived from it)")
        ensembles[PRIOR_ENSEMBLE] = dict(ensembles["Nmax"],
                                         space="physical" if values.get("prior_space") == "physical" else "prior")
    if values.get("space") != "chebyshev" and isinstance(ensembles, dict):   # recorded where it is not the paper's
        for ens in ensembles.values():
            if isinstance(ens, dict):
                ens.setdefault("space", values.get("space"))
    cfg = Config(values, preset, overrides or [], Path(root))
    _validate(cfg)
    return cfg


def add_common_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--preset", default=os.environ.get("SPECTRAL_PRESET", "reference"),
                        help="named preset (default: reference, or $SPECTRAL_PRESET); "
                             f"one of {', '.join(PRESETS)}")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a preset value (repeatable; dotted keys for nested tables)")
    parser.add_argument("--root", default=".", help="directory read from and written to (default: .)")
    return parser


def config_from_args(args: argparse.Namespace) -> Config:
    return load_config(args.preset, args.overrides, args.root)


@main_guard
def main(argv: list[str] | None = None) -> int:
    parser = add_common_args(argparse.ArgumentParser(description=__doc__.split("\n")[0]))
    sub = parser.add_subparsers(dest="command", required=True)
    size = sub.add_parser("array-size", help="number of Slurm array tasks of a stage")
    size.add_argument("stage", choices=["generation", "training", "training-groups"])
    group = sub.add_parser("group-range", help="training task ids (A-B) of one (ensemble, σ) group")
    group.add_argument("group", type=int)
    get = sub.add_parser("get", help="print one resolved value (JSON for tables)")
    get.add_argument("key")
    sub.add_parser("show", help="print the resolved configuration")
    args = parser.parse_args(argv)
    cfg = config_from_args(args)
    if args.command == "array-size":
        n = {"generation": len(generation_tasks(cfg)), "training": len(training_tasks(cfg)),
             "training-groups": len(training_groups(cfg))}[args.stage]
        print(n)
    elif args.command == "group-range":
        groups = training_groups(cfg)
        if not 0 <= args.group < len(groups):
            raise ConfigError(f"training group {args.group}: expected 0..{len(groups) - 1}")
        ids = groups[args.group][2]
        print(f"{ids[0]}-{ids[-1]}")
    elif args.command == "get":
        if args.key not in cfg:
            raise ConfigError(f"unknown key {args.key!r}")
        value = cfg[args.key]
        print(json.dumps(value) if isinstance(value, (dict, list)) else value)
    else:
        print(json.dumps(dict(cfg), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
