"""Configuration in one place: the named presets, and what the shell asks (``main``).

Every script takes ``--preset NAME`` (default ``reference``), ``--set KEY=VALUE`` (repeatable;
dotted keys reach into nested tables, values are parsed as JSON when they parse, else kept as
strings) and ``--root DIR`` (default: the current directory).  method §10.  ``load_config`` resolves
them into a ``Config``: the values, checked against settings.SCHEMA (settings.py: the type, range
and meaning of every key, the overrides), with the derived grids and the output paths (paths.py).
The Slurm array index -> task maps are tasks.py's.

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
import shlex
import sys
from pathlib import Path

import numpy as np

from cli import main_guard
from paths import STANDIN_NOISE_FILE, OutputPaths
from roles import PRIOR_ENSEMBLE, REFERENCE
from settings import ConfigError, apply_override, validate
from tasks import ensemble_space, generation_tasks, training_groups, training_tasks

M_MUON_GEV = 0.10566  # method §5: the energy grid is linspace(m_mu, 24 m_mu, 47)

_REFERENCE = {
    # method §2: geometry and kernel
    "kernel": "rratio",            # laplace | periodic | rratio | thermal
    "T": 64,                       # full temporal extent (1/temperature for `thermal`)
    "t_min": 1,                    # first input time slice (t = 0 is never an input)
    "t_max": 32,                   # last input time slice
    "a_inv_gev": 1.0,              # 1/a in GeV, converts the *_gev keys below
    # method §5: targets
    "energy_min_gev": M_MUON_GEV,
    "energy_max_gev": 24 * M_MUON_GEV,
    "n_energies": 47,
    "sigmas_gev": [0.44, 0.63],
    # method §3: the Chebyshev training space
    "E0_min": 0.2,
    "E0_max": 1.3,
    "epsilon": 1e-7,
    "nb_list": [16, 32, 64, 128],
    "nrho_list": [25_000, 50_000, 100_000, 200_000, 400_000],
    # the training space of the whole audience: chebyshev (the paper's), physical (the
    # physical space P, physical_space.py) or mixture (half each, training_sets.py).  The
    # recommended presets train on the mixture, where the data live (docs/validation.md); the
    # ``paper`` presets on the Chebyshev space, as published.
    "space": "mixture",
    # method §8 "Beyond the paper": the prior systematic, off by default (the paper's budget).
    # On, it adds the ensemble Nref_prior (Nmax's network, N_b and N_rho, derived from Nmax in
    # load_config) trained on a second space, ``prior_space``: the Chebyshev construction of
    # method §3 with x(E) = 1 - 2 exp(-E / x_scale) and its own E0 range and ε; chosen by
    # measurement: the same map, thresholds E0 ~ U(0.05, 2.5) (README, "The prior systematic").
    # ``prior_space="physical"`` trains Nref_prior on the physical space P instead.
    "prior_systematic": False,
    "prior_space": {"x_scale": 1.0, "E0_min": 0.05, "E0_max": 2.5, "epsilon": 1e-7},
    # Beyond the paper, the calibrated result (calibration.py): the calibration set of
    # calibrate_sigma.py, N_cal densities of the calibration space (settings.CALIBRATION_SPACES),
    # N_boot,cal samples each; the audience's σ_tot calibrated per bin of a feature
    # (calibration_bins), the recommended centre; optionally the interval networks
    # (interval_networks.py: one per replica of Nmax, trained on a file of the calibration space)
    # with their width and median as two more centres
    "interval_networks": False,
    "calibration_space": "mixture",
    "n_cal": 20_000,
    "n_boot_cal": 50,
    "calibration_bins": 4,
    "calibrated_centre": "audience",
    # method §4: noise
    "noise_file": STANDIN_NOISE_FILE,
    "n_noise": 20,
    # reproducibility: every random stream derives from (seed, purpose, ...) -- see rng_for()
    "seed": 20230703,
    "rng_block": 1000,             # samples per independent random block (fixes the stream)
    # method §6: networks and training
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
    "noise": "replica",            # NOISE_MODES: each replica's own N_noise copies (method §7)
    # CUDA only: TF32 (10-bit mantissa) in float32 matrix products and convolutions; off = IEEE
    # float32, the same numbers as the CPU's within round-off (devices.select_device)
    "tf32": False,
    # method §7: the broad audience
    "n_replicas": 5,
    "ensembles": {
        "Nmax": {"arch": "arcL", "nb": 128, "nrho": 400_000},
        "Nref_b": {"arch": "arcL", "nb": 16, "nrho": 400_000},
        "Nref_n": {"arch": "arcS", "nb": 128, "nrho": 400_000},
        "Nref_rho": {"arch": "arcL", "nb": 128, "nrho": 25_000},
    },
    # method §8-9: prediction and validation mocks
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


# the paper's audience, as published: the Chebyshev training space; beside its result the calibrated
# result of the interval networks' median (and the audience centre)
_PAPER = _derived(_REFERENCE, space="chebyshev", interval_networks=True, calibrated_centre="median")
# the demo sizes
_DEMO = dict(nb_list=[16, 128], nrho_list=[2000, 8000], n_noise=2, max_epochs=20, patience=8, n_replicas=3,
             n_boot=200, n_cal=2000,
             ensembles={"Nmax": {"arch": "arcL", "nb": 128, "nrho": 8000},
                        "Nref_b": {"arch": "arcL", "nb": 16, "nrho": 8000},
                        "Nref_n": {"arch": "arcS", "nb": 128, "nrho": 8000},
                        "Nref_rho": {"arch": "arcL", "nb": 128, "nrho": 2000}})

PRESETS = {
    # the recommended audience: trained on the mixture, its own result calibrated per bin of its relative width
    "reference": _REFERENCE,
    "paper": _PAPER,
    # small enough that the whole pipeline runs on 2 CPU cores in minutes (README, "The two
    # commands", gives the measured wall time); with n_noise=4 and 30 epochs the training alone
    # would take 3x as long
    "demo": _derived(_REFERENCE, **_DEMO),
    "demo_paper": _derived(_PAPER, **_DEMO),
    # for tests and the CI Slurm run: seconds, not physics
    "tiny": _derived(
        _PAPER,
        nb_list=[16, 32],
        nrho_list=[200, 400],
        n_noise=2,
        rng_block=100,
        max_epochs=3,
        patience=2,
        n_replicas=2,
        n_boot=40,
        n_cal=16,
        n_boot_cal=10,
        ensembles={
            "Nmax": {"arch": "arcL", "nb": 32, "nrho": 400},
            "Nref_b": {"arch": "arcL", "nb": 16, "nrho": 400},
            "Nref_n": {"arch": "arcS", "nb": 32, "nrho": 400},
            "Nref_rho": {"arch": "arcL", "nb": 32, "nrho": 200},
        },
    ),
}
# the demo with the prior systematic (method §8): one more ensemble, Nref_prior
PRESETS["demo_prior"] = _derived(PRESETS["demo"], prior_systematic=True)


class Config(OutputPaths, dict):
    """The resolved preset: a plain dict of values (``cfg["T"]``), plus where it came from, the
    derived grids and the output paths (paths.OutputPaths).  ``cfg.preset``, ``cfg.overrides`` and
    ``cfg.root`` record how it was made; ``cfg.to_json()`` is what every output file stores.
    """

    def __init__(self, values: dict, preset: str, overrides: list[str], root: Path):
        super().__init__(values)
        self.preset = preset
        self.overrides = list(overrides)
        self.root = Path(root)

    # --- derived quantities (lattice units) ---------------------------------------------
    @property
    def t(self) -> np.ndarray:
        """Input time slices t_min..t_max (method §2)."""
        return np.arange(self["t_min"], self["t_max"] + 1, dtype=np.float64)

    @property
    def n_t(self) -> int:
        return self["t_max"] - self["t_min"] + 1

    @property
    def energies(self) -> np.ndarray:
        """The N_E target energies E_k in lattice units (method §5)."""
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


def load_config(preset: str = "reference", overrides: list[str] | None = None,
                root: str | Path = ".") -> Config:
    """The resolved configuration: a preset, with ``KEY=VALUE`` overrides applied, validated."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; known presets: {', '.join(PRESETS)}")
    values = copy.deepcopy(PRESETS[preset])
    for item in overrides or []:
        apply_override(values, item)
    ensembles = values.get("ensembles")
    if isinstance(ensembles, dict) and PRIOR_ENSEMBLE in ensembles:
        raise ConfigError(f"ensemble {PRIOR_ENSEMBLE} is derived from {REFERENCE}; turn it on with "
                          "--set prior_systematic=true instead of listing it")
    if values.get("prior_systematic") is True:    # method §8: Nmax's network, N_b and N_rho
        if not isinstance(ensembles, dict) or not isinstance(ensembles.get(REFERENCE), dict):
            raise ConfigError(f"prior_systematic=true needs the ensemble {REFERENCE} ({PRIOR_ENSEMBLE} is derived "
                              "from it)")
        ensembles[PRIOR_ENSEMBLE] = dict(ensembles[REFERENCE],
                                         space="physical" if values.get("prior_space") == "physical" else "prior")
    if values.get("space") != "chebyshev" and isinstance(ensembles, dict):   # recorded where it is not the paper's
        for ens in ensembles.values():
            if isinstance(ens, dict):
                ens.setdefault("space", values.get("space"))
    cfg = Config(values, preset, overrides or [], Path(root))
    validate(cfg)
    if PRIOR_ENSEMBLE in cfg["ensembles"] and ensemble_space(cfg, PRIOR_ENSEMBLE) == ensemble_space(cfg, REFERENCE):
        raise ConfigError(f"prior_space={cfg['prior_space']!r} with space={cfg['space']!r}: {PRIOR_ENSEMBLE} would "
                          f"train on {REFERENCE}'s own space; the prior systematic needs a second space")
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
