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
import os
import sys
from pathlib import Path

import numpy as np

M_MUON_GEV = 0.10566  # SPEC §5: the energy grid is linspace(m_mu, 24 m_mu, 47)
# SPEC §7: the noise a replica trains on (replica_streams.py): its own noise instance, the training
# file's shared copies, or new noise every epoch
NOISE_MODES = ("replica", "stored", "fresh")

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
    # SPEC §8 "Beyond the paper": the prior systematic, off by default (the paper's budget).
    # On, it adds the ensemble Nref_prior (Nmax's network, N_b and N_rho, derived from Nmax in
    # load_config) trained on a second space, ``prior_space``: the Chebyshev construction of
    # SPEC §3 with x(E) = 1 - 2 exp(-E / x_scale) and its own E0 range and ε; chosen by
    # measurement: the same map, thresholds E0 ~ U(0.05, 2.5) (README, "The prior systematic").
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

PRIOR_ENSEMBLE = "Nref_prior"      # the ensemble of the prior systematic
SPACES = ("chebyshev", "prior")    # the training spaces (sigma_model_utils.space_parameters)


class ConfigError(ValueError):
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

    def training_file(self, nb: int, nrho: int, space: str = "chebyshev") -> Path:
        """SPEC §10's training file; the second space of the prior systematic has its own name."""
        name = "" if space == "chebyshev" else f"{space}_"
        return self.root / f"training_datasets_T{self.n_t}" / f"training_data_{name}Nb{nb}_Nrho{nrho}.hdf5"

    def model_dir(self, sigma_gev: float, ensemble: str) -> Path:
        return self.root / f"trained_models_sigma{sigma_tag(sigma_gev)}" / ensemble

    def checkpoint(self, sigma_gev: float, ensemble: str, replica: int) -> Path:
        return self.model_dir(sigma_gev, ensemble) / f"replica_{replica}_best.pth"

    def state_path(self, sigma_gev: float, ensemble: str, replica: int) -> Path:
        """The resumable training state of a replica (checkpoints.save_state)."""
        return self.model_dir(sigma_gev, ensemble) / f"replica_{replica}_state.pth"

    def history_path(self, sigma_gev: float, ensemble: str, replica: int) -> Path:
        return self.model_dir(sigma_gev, ensemble) / f"replica_{replica}_best_history.csv"

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
    """The training space of an ensemble: ``chebyshev`` (SPEC §3), or ``prior`` for Nref_prior."""
    return cfg["ensembles"][ensemble].get("space", "chebyshev")


def generation_tasks(cfg: Config) -> list[tuple[str, int]]:
    """Slurm array index i of the generation stage -> the (space, N_b) it generates: one task per
    N_b of the Chebyshev space, then, with the prior systematic, one for the second space."""
    tasks = [("chebyshev", nb) for nb in cfg["nb_list"]]
    prior_nbs = sorted({ens["nb"] for ens in cfg["ensembles"].values() if ens.get("space") == "prior"})
    return tasks + [("prior", nb) for nb in prior_nbs]


def generated_nrhos(cfg: Config, space: str) -> list[int]:
    """The N_ρ of the files a generation task writes: every nrho_list entry for the Chebyshev
    space, only what the ensembles use for the prior space (prefixes of one stream either way)."""
    if space == "chebyshev":
        return list(cfg["nrho_list"])
    return sorted({ens["nrho"] for ens in cfg["ensembles"].values() if ens.get("space") == space})


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


def _validate(cfg: Config) -> None:
    kernels = ("laplace", "periodic", "rratio", "thermal")
    if cfg["kernel"] not in kernels:
        raise ConfigError(f"kernel {cfg['kernel']!r}: expected one of {kernels}")
    if not 1 <= cfg["t_min"] <= cfg["t_max"]:
        raise ConfigError(f"time slices t_min={cfg['t_min']}, t_max={cfg['t_max']}: "
                          "expected 1 <= t_min <= t_max (t = 0 is never an input, SPEC §2)")
    if cfg["kernel"] != "laplace" and cfg["t_max"] >= cfg["T"]:
        raise ConfigError(f"t_max={cfg['t_max']} must be below T={cfg['T']} for kernel {cfg['kernel']}")
    if not 0 < cfg["E0_min"] < cfg["E0_max"]:
        raise ConfigError(f"E0 range ({cfg['E0_min']}, {cfg['E0_max']}): expected 0 < E0_min < E0_max")
    if cfg["noise"] not in NOISE_MODES:
        raise ConfigError(f"noise {cfg['noise']!r}: expected one of {NOISE_MODES}")
    if sorted(cfg["nrho_list"]) != list(cfg["nrho_list"]):
        raise ConfigError(f"nrho_list {cfg['nrho_list']} must be increasing (prefixes of one stream)")
    for name, ens in cfg["ensembles"].items():
        if ens["nb"] not in cfg["nb_list"] or ens["nrho"] not in cfg["nrho_list"]:
            raise ConfigError(f"ensemble {name}: N_b={ens['nb']}, N_rho={ens['nrho']} is not among "
                              f"the generated sets nb_list={cfg['nb_list']}, nrho_list={cfg['nrho_list']}")
    if cfg["closure_level"] not in (0, 1):
        raise ConfigError(f"closure_level={cfg['closure_level']!r}: expected 1 (measured mocks, the "
                          "default) or 0 (samples around the exact correlator, a diagnostic)")
    if not isinstance(cfg["closure_repetition"], int) or cfg["closure_repetition"] < 0:
        raise ConfigError(f"closure_repetition={cfg['closure_repetition']!r}: expected an integer >= 0")
    if not isinstance(cfg["noise_file"], str) or not cfg["noise_file"].strip():
        raise ConfigError(f"noise_file={cfg['noise_file']!r}: expected the path of a noise file (the "
                          f"default {_REFERENCE['noise_file']}, or one made by make_noise_file.py)")
    prior = cfg["prior_space"]
    if set(prior) != {"x_scale", "E0_min", "E0_max", "epsilon"}:
        raise ConfigError(f"prior_space {prior}: expected the keys x_scale, E0_min, E0_max, epsilon")
    if not (prior["x_scale"] > 0 and 0 < prior["E0_min"] < prior["E0_max"]):
        raise ConfigError(f"prior_space {prior}: expected x_scale > 0 and 0 < E0_min < E0_max")
    if not isinstance(cfg["prior_systematic"], bool):
        raise ConfigError(f"prior_systematic={cfg['prior_systematic']!r}: expected true or false")
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
    if PRIOR_ENSEMBLE in values["ensembles"]:
        raise ConfigError(f"ensemble {PRIOR_ENSEMBLE} is derived from Nmax; turn it on with "
                          "--set prior_systematic=true instead of listing it")
    if values.get("prior_systematic") is True:    # SPEC §8: Nmax's network, N_b and N_rho
        values["ensembles"][PRIOR_ENSEMBLE] = dict(values["ensembles"]["Nmax"], space="prior")
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
    try:
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
    except ConfigError as err:
        print(f"config error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
