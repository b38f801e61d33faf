"""The settings: the type, range and meaning of every preset key (``SCHEMA``), the ``--set
KEY=VALUE`` overrides and the check of a resolved configuration (``validate``).

Overrides: dotted keys reach into nested tables, values are parsed as JSON when they parse, else
kept as strings.  Every key is checked once against its ``Setting``; the first problem is one
``ConfigError`` naming key, value, expectation and meaning.  The presets are config.py's.
"""
from __future__ import annotations

import ast
import json
import math
from collections.abc import Callable
from dataclasses import dataclass

from io_utils import REPO_DIR, UserError
from paths import STANDIN_NOISE_FILE, sigma_tag
from roles import CALIBRATED_CENTRES, INTERVAL_RUN, NETWORK_CENTRES, REFERENCE
from sigma_model_utils import KERNELS, SPACES


def architecture_names() -> tuple[str, ...]:
    """The architectures of the network module's table ``ARCHITECTURES`` (pytorch_models_t32.py,
    its one owner), read from its source: checking a setting must not import torch, which takes
    seconds (more on a cluster's shared file system) for every ``python config.py`` the Slurm
    scripts run."""
    tree = ast.parse((REPO_DIR / "pytorch_models_t32.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["ARCHITECTURES"]:
            return tuple(ast.literal_eval(node.value))
    raise RuntimeError("pytorch_models_t32.py defines no ARCHITECTURES table")


ARCHITECTURES = architecture_names()

# method §7: the noise a replica trains on (replica_streams.py): its own noise instance, the training
# file's shared copies, or new noise every epoch
NOISE_MODES = ("replica", "stored", "fresh")
# the ``space`` a whole audience may train on (sigma_model_utils.SPACES less the prior systematic's)
AUDIENCE_SPACES = ("chebyshev", "physical", "mixture")
# The one place where a calibration space (the key ``calibration_space``) names the training space
# whose file (with Nmax's N_b and N_ρ) the interval networks train on and the calibration draws
# from: ``training`` is Nmax's own training space (None: the run keeps Nmax's; the paper's Chebyshev
# space unless ``space`` says otherwise), ``mixture`` the mixture of the Chebyshev space and the
# physical space P (training_sets.py).
CALIBRATION_SPACES = {"training": None, "mixture": "mixture"}


class ConfigError(UserError):
    """A preset name, an override or a resolved value that cannot be used."""


# --- overrides --------------------------------------------------------------------------------
def _parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def apply_override(values: dict, item: str) -> None:
    """Set one ``KEY=VALUE`` (dotted keys for nested tables) in the preset's ``values``."""
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


# --- the schema: type, range and meaning of every setting ---------------------------------------
@dataclass(frozen=True)
class Setting:
    """One preset key: its type ('int', 'float', 'str', 'bool', 'int list', 'float list', 'ensembles',
    'prior space'), the range its values must lie in (a predicate and the words for it) and what it
    means."""
    kind: str
    meaning: str
    expected: str = ""
    valid: Callable[[object], bool] = lambda value: True


def _positive(x) -> bool:
    return x > 0


def _at_least(n):
    return lambda x: x >= n


SCHEMA = {
    "kernel": Setting("str", "kernel b(t, ω) of method §2", f"one of {KERNELS}", lambda k: k in KERNELS),
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
    "noise_file": Setting("str", "noise file (mean, cov, t; method §4), relative to --root or the repository",
                          f"the path of a noise file (the default {STANDIN_NOISE_FILE}, or one made "
                          "by make_noise_file.py)", lambda p: p.strip() != ""),
    "prior_systematic": Setting("bool", "whether the prior systematic Σ_prior is computed (ensemble "
                                "Nref_prior, method §8)"),
    "space": Setting("str", "the training space of the whole audience (mixture: the recommended presets; "
                     "chebyshev: the paper's)",
                     f"one of {AUDIENCE_SPACES}", lambda s: s in AUDIENCE_SPACES),
    "prior_space": Setting("prior space", "the second training space of Nref_prior: a table {x_scale, E0_min, "
                           "E0_max, epsilon} (the Chebyshev construction with these parameters; default the "
                           "wide-E0 one) or \"physical\" (the physical space P)"),
    "interval_networks": Setting("bool", "whether the interval networks are trained: per replica of Nmax, "
                                 "one network of its architecture giving the quantiles at Φ(-1), 0.5, Φ(1) "
                                 "of ρ_σ(E) (pinball loss; interval_networks.py)"),
    "calibration_space": Setting("str", "the space the calibration set is drawn from (and the interval networks "
                                 "train on); training: Nmax's own training space; mixture: half Chebyshev, "
                                 "half the physical space P",
                                 f"one of {tuple(CALIBRATION_SPACES)}", lambda s: s in CALIBRATION_SPACES),
    "n_cal": Setting("int", "densities N_cal of the calibration set (calibrate_sigma.py)",
                     ">= 10 (the conformal rank ⌈(N_cal + 1)·0.6827⌉ must not exceed N_cal)", _at_least(10)),
    "n_boot_cal": Setting("int", "bootstrap samples N_boot,cal of each calibration density",
                          ">= 2 (the statistical error needs two)", _at_least(2)),
    "calibration_bins": Setting("int", "bins of the audience centre's feature, each with its own conformal factor "
                                "(calibration.py; fewer when a bin would hold under 200 calibration items)",
                                ">= 1", _at_least(1)),
    "calibrated_centre": Setting("str", "the centre of the recommended calibrated result: audience (ρ̄_Nmax with "
                                 "σ_tot calibrated per bin of its relative width), paper (ρ̄_Nmax with the Σ_X "
                                 "around the interval networks' width) or median (the interval networks' q_50)",
                                 f"one of {CALIBRATED_CENTRES}", lambda c: c in CALIBRATED_CENTRES),
    "tf32": Setting("bool", "CUDA only: TF32 in float32 matrix products and convolutions (off: IEEE float32)"),
    "noise": Setting("str", "the noise a replica trains on (method §7)", f"one of {NOISE_MODES}",
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
    "ensembles": Setting("ensembles", "the ensembles of the broad audience, method §7"),
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
    "arch": Setting("str", "network architecture (method §6)", f"one of {tuple(ARCHITECTURES)}",
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


def validate(cfg: dict) -> None:
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
    if cfg["interval_networks"] and REFERENCE not in cfg["ensembles"]:
        raise ConfigError(f"interval_networks=true needs the ensemble {REFERENCE} (the interval networks take its "
                          "network, N_b and N_rho); set interval_networks=false")
    if cfg["calibrated_centre"] in NETWORK_CENTRES and not cfg["interval_networks"]:
        raise ConfigError(f"calibrated_centre={cfg['calibrated_centre']} needs the interval networks' width; set "
                          "interval_networks=true, or calibrated_centre=audience")
    if INTERVAL_RUN in cfg["ensembles"]:
        raise ConfigError(f"ensemble {INTERVAL_RUN}: the name of the interval networks' training run; choose "
                          "another label")
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
                          "expected 1 <= t_min < t_max (t = 0 is never an input, method §2)")
    if cfg["kernel"] != "laplace" and cfg["t_max"] >= cfg["T"]:
        raise ConfigError(f"t_max={cfg['t_max']} must be below T={cfg['T']} for kernel {cfg['kernel']}")
    for low, high in (("E0_min", "E0_max"), ("energy_min_gev", "energy_max_gev")):
        if not cfg[low] < cfg[high]:
            raise ConfigError(f"{low}={cfg[low]}, {high}={cfg[high]}: expected {low} < {high}")
    for name, ens in cfg["ensembles"].items():
        if ens["nb"] not in cfg["nb_list"] or ens["nrho"] not in cfg["nrho_list"]:
            raise ConfigError(f"ensemble {name}: N_b={ens['nb']}, N_rho={ens['nrho']} is not among "
                              f"the generated sets nb_list={cfg['nb_list']}, nrho_list={cfg['nrho_list']}")
    if len({sigma_tag(s) for s in cfg["sigmas_gev"]}) != len(cfg["sigmas_gev"]):
        raise ConfigError(f"sigmas_gev {cfg['sigmas_gev']}: two widths share a directory tag 100·σ")
