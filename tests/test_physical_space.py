"""The physical space P (physical_space.py) and its training files, against independent computations.

References: scipy.integrate.quad over ω with the shapes written out here (scipy.special.gamma,
numpy's Chebyshev module), split at every peak and threshold; the δ terms added in closed form.
"""
import json

import h5py
import numpy as np
import pytest
from numpy.polynomial import chebyshev
from scipy.integrate import quad
from scipy.special import gamma

import physical_space as ps
import sigma_model_utils as smu
import training_sets
from config import load_config
from settings import ConfigError
from tasks import generation_tasks
from training_sets import target_key


# --- the shapes written independently ---------------------------------------------------------
def reference_density(params: dict, i: int):
    """ρ(ω) of sample i without its δ terms, from the formulas of the module docstring."""
    parts = []
    for A, M, G in params["resonances"][i]:
        if A > 0:
            norm = 0.5 + np.arctan(M / G) / np.pi
            parts.append(lambda w, A=A, M=M, G=G, n=norm:
                         A * 2 * w * M * G / np.pi / ((w * w - M * M) ** 2 + (M * G) ** 2) / n)
    for A, E, a, b in params["thresholds"][i]:
        if A > 0:
            parts.append(lambda w, A=A, E=E, a=a, b=b:
                         A * (w - E) ** a * np.exp(-b * (w - E)) * b ** (a + 1) / gamma(a + 1)
                         if w > E else 0.0)
    A, E_c, width, *d = params["continuum"][i]
    if A > 0:
        series = np.r_[0.0, d]
        parts.append(lambda w: A * (1 - np.exp(-(w - E_c) / width)) ** 2
                     * np.exp(chebyshev.chebval(1 - 2 * np.exp(-w), series)) if w > E_c else 0.0)
    return lambda w: sum(p(w) for p in parts)


def breakpoints(params: dict, i: int) -> list:
    points = []
    for A, M, G in params["resonances"][i]:
        if A > 0:
            points += [M - 10 * G, M - G, M, M + G, M + 10 * G]
    for A, E, _, _ in params["thresholds"][i]:
        if A > 0:
            points += [E, E + 1e-4, E + 1e-2, E + 0.1, E + 1]
    A, E_c, width = params["continuum"][i][:3]
    if A > 0:
        points += [E_c, E_c + width, E_c + 5 * width]
    return points


def quad_over(f, points) -> float:
    """∫_0^60 f by adaptive quadrature split at the points inside (beyond 60, ρ's part of every
    integral is below 1e-17 of it)."""
    edges = [0.0, *sorted(p for p in points if 0 < p < 60), 60.0]
    return sum(quad(f, a, b, limit=500, epsabs=0, epsrel=1e-12)[0] for a, b in zip(edges[:-1], edges[1:]) if b > a)


def worst_relative_error(params, cfg, samples, t_indices=(0, 15, -1), e_indices=(0, 23, -1)) -> float:
    """max |ours - quad| / quad over some t, E_k and every σ (ρ ≥ 0: the value is its scale)."""
    correlators, targets = ps.correlators_and_targets(params, cfg)
    worst = 0.0
    for i in samples:
        rho, points = reference_density(params, i), breakpoints(params, i)
        states = [(A, M) for A, M in params["states"][i] if A > 0]
        for k in t_indices:
            t = cfg.t[k]
            exact = quad_over(lambda w: smu.kernel(t, w, cfg["kernel"], cfg["T"]) * rho(w), points)
            exact += sum(A * smu.kernel(t, M, cfg["kernel"], cfg["T"]) for A, M in states)
            worst = max(worst, abs(correlators[i, k] - exact) / exact)
        for s in cfg["sigmas_gev"]:
            sigma = cfg.sigma(s)
            for k in e_indices:
                E = cfg.energies[k]
                exact = quad_over(lambda w: np.exp(-(E - w) ** 2 / (2 * sigma**2)) / (np.sqrt(2 * np.pi) * sigma)
                                  * rho(w),
                                  points + [E])
                exact += sum(A * np.exp(-(E - M) ** 2 / (2 * sigma**2)) / (np.sqrt(2 * np.pi) * sigma)
                             for A, M in states)
                worst = max(worst, abs(targets[s][i, k] - exact) / exact)
    return worst


def hard_samples() -> dict:
    """Two samples with every kind of structure at its sharpest: Γ = 0.005 resonances (one at the
    bottom of the range), a wide one, an S-wave threshold with β = 5, a sharp continuum onset, δ terms."""
    p = {kind: np.zeros((2,) + table.shape[1:])
         for kind, table in ps.sample_parameters(np.random.default_rng(0), 1).items()}
    p["states"][0] = [[0.3, 0.9], [0.05, 2.2]]
    p["resonances"][0] = [[0.2, 1.7, 0.005], [0.1, 0.1, 0.005], [0.4, 0.6, 1.0]]
    p["thresholds"][0] = [[0.5, 0.35, 0.5, 5.0], [0.1, 2.4, 2.7, 0.6]]
    p["continuum"][0] = [0.1, 1.2, 0.05, 0.9, -0.4, 0.3, 0.2, -0.1, 0.1, 0.05, -0.05]
    p["resonances"][1, 0] = [1.0, 2.5, 0.005]
    p["thresholds"][1, 0] = [1.0, 0.1, 0.5, 5.0]
    return p


# --- the space ----------------------------------------------------------------------------------
def test_shapes_have_unit_integral():
    for M, G in ((0.1, 0.005), (1.3, 0.05), (0.2, 1.0)):
        bw = quad_over(lambda w: ps.breit_wigner(w, M, G), [M - 10 * G, M - G, M, M + G, M + 10 * G])
        assert bw + quad(lambda w: ps.breit_wigner(w, M, G), 60, np.inf)[0] == pytest.approx(1, rel=1e-10)
    for E, a, b in ((0.3, 0.5, 5.0), (1.0, 3.0, 0.5)):
        th = quad(lambda w: ps.threshold(w, E, a, b), E, np.inf, epsabs=0, epsrel=1e-12, limit=500)[0]
        assert th == pytest.approx(1, rel=1e-9)


def test_draws_follow_the_stated_ranges_and_counts():
    p = ps.sample_parameters(np.random.default_rng(4), 4000)
    used = {kind: (ps._rows(p, kind)[..., 0] > 0) for kind in ps.PARAMETER_TABLES}
    counts = {kind: u.sum(axis=1) for kind, u in used.items()}
    assert (sum(counts.values()) >= 1).all()
    for kind, n in ps.SLOTS.items():
        assert set(np.unique(counts[kind])) == set(range(n + 1)), kind
        rows = ps._rows(p, kind)
        assert (rows[~used[kind]] == 0).all()                 # unused slots are zero
        assert (np.diff(used[kind].astype(int), axis=1) <= 0).all()   # used slots come first
    A = np.concatenate([ps._rows(p, k)[..., 0][used[k]] for k in ps.PARAMETER_TABLES])
    scale = ps.RANGES["A_scale"]
    assert A.min() >= scale / 10 and A.max() <= scale * 10 and A.max() / A.min() > 90   # two decades
    G = p["resonances"][..., 2][used["resonances"]]
    assert G.min() >= 0.005 and G.max() <= 1 and np.median(np.log(G)) == pytest.approx(np.log(np.sqrt(0.005)), abs=0.1)
    for kind, col in (("states", 1), ("resonances", 1), ("thresholds", 1), ("continuum", 1)):
        x = ps._rows(p, kind)[..., col][used[kind]]
        assert x.min() >= 0.1 and x.max() <= 2.5, kind
    alpha = p["thresholds"][..., 2][used["thresholds"]]
    assert alpha.min() >= 0.5 and alpha.max() <= 3


def test_every_sample_is_non_negative():
    p = ps.sample_parameters(np.random.default_rng(5), 300)
    p = {k: np.concatenate([v, hard_samples()[k]]) for k, v in p.items()}
    omega = np.broadcast_to(np.linspace(1e-4, 12, 6000), (len(p["states"]), 6000))
    assert (ps.density(omega, p) >= 0).all()
    for kind in smu.KERNELS:
        cfg = load_config("reference", [f"kernel={kind}"])
        correlators, targets = ps.correlators_and_targets(p, cfg)
        assert (correlators > 0).all(), kind
        assert all((targets[s] >= 0).all() for s in targets)


@pytest.mark.parametrize("kind", smu.KERNELS)
def test_integrals_match_adaptive_quadrature(kind):
    """The accuracy contract (relative 1e-8) for every kernel, with Γ = 0.005 resonances, an S-wave
    threshold, a continuum and δ terms, and for a random sample."""
    cfg = load_config("reference", [f"kernel={kind}"])
    p = hard_samples()
    random = ps.sample_parameters(np.random.default_rng(smu.KERNELS.index(kind)), 1)
    p = {k: np.concatenate([v, random[k]]) for k, v in p.items()}
    assert worst_relative_error(p, cfg, range(3)) <= 1e-8


def test_a_rule_without_refinement_at_the_resonance_fails_the_check(monkeypatch):
    """The check can fail: without the panels around a narrow resonance the rule is wrong."""
    cfg = load_config("reference", ["kernel=laplace"])
    p = {k: v[1:] for k, v in hard_samples().items()}
    p["thresholds"][:] = 0.0                               # only the Γ = 0.005 resonance at 2.5
    monkeypatch.setattr(ps, "_RESONANCE_STEPS", ps._RESONANCE_STEPS[:0])
    assert worst_relative_error(p, cfg, [0]) > 1e-6


def test_a_sample_does_not_depend_on_its_batch():
    cfg = load_config("reference")
    p = ps.sample_parameters(np.random.default_rng(9), 70)
    correlators, targets = ps.correlators_and_targets(p, cfg)
    for i in (0, 5, 66):
        alone = {k: v[i:i + 1] for k, v in p.items()}
        c, t = ps.correlators_and_targets(alone, cfg)
        np.testing.assert_array_equal(c[0], correlators[i])
        for s in t:
            np.testing.assert_array_equal(t[s][0], targets[s][i])


# --- streams, files, presets --------------------------------------------------------------------
def physical_cfg(tiny_cfg, root, *more):
    return load_config("tiny", tiny_cfg.overrides + ["space=physical", "calibration_space=training", *more], root)


def read_all(path):
    with h5py.File(path, "r") as h5:
        return {key: h5[key][()] for key in h5}, dict(h5.attrs)


def test_streams_are_independent(tiny_cfg):
    """P's stream is none of the Chebyshev streams (nor a calibration stream), and a Chebyshev
    setting does not change P's samples."""
    first = [smu.rng_for(tiny_cfg, name, *keys).random(4).tolist() for name, keys in
             [("training-space-physical", (0,)), ("training-space", (0, 0)), ("training-space", (16, 0)),
              ("training-space-prior", (16, 0)), ("training-space-mixture", (16, 0)), ("calibration-space", (0,)),
              ("training-noise-physical", (0,))]]
    assert len({tuple(f) for f in first}) == len(first)
    p, corr, _ = training_sets.clean_block(tiny_cfg, None, 0, "physical")
    other = load_config("tiny", tiny_cfg.overrides + ["E0_max=1.0", "epsilon=0.5"], tiny_cfg.root)
    q, corr_q, _ = training_sets.clean_block(other, None, 0, "physical")
    for kind in p:
        np.testing.assert_array_equal(p[kind], q[kind])
    np.testing.assert_array_equal(corr, corr_q)
    E0 = training_sets.clean_block(tiny_cfg, 16, 0)[0]["E0"]
    assert not set(E0.tolist()) & set(p["states"][..., 1].ravel().tolist())


def test_physical_files_are_deterministic_prefixes_and_regenerate(tiny_cfg, tmp_path):
    cfg = physical_cfg(tiny_cfg, tmp_path / "a")
    assert generation_tasks(cfg) == [("physical", None)]
    paths = training_sets.generate_training_files(cfg, None, workers=2, progress=False, log=lambda m: None,
                                                  space="physical")
    assert [p.name for p in paths] == ["training_data_physical_Nrho200.hdf5", "training_data_physical_Nrho400.hdf5"]
    large, attrs = read_all(paths[1])
    small, _ = read_all(paths[0])
    assert json.loads(attrs["functional_space"])["space"] == "physical"
    assert json.loads(attrs["parameter_columns"]) == {k: list(v) for k, v in ps.COLUMNS.items()}
    for key in ["clean_correlators", "noise_scale", *ps.PARAMETER_TABLES] + [target_key(s) for s in cfg["sigmas_gev"]]:
        np.testing.assert_array_equal(small[key], large[key][:200], err_msg=key)
    for key in ("standardized_noisy_correlators", "mu_vector", "gamma_vector", "t", "energies"):
        assert key in large, key
    # the stored parameters regenerate every sample bit for bit
    tables = {k: large[k] for k in ps.PARAMETER_TABLES}
    clean, targets = ps.correlators_and_targets({k: v[37:45] for k, v in tables.items()}, cfg)
    np.testing.assert_array_equal(clean, large["clean_correlators"][37:45])
    for s in cfg["sigmas_gev"]:
        np.testing.assert_array_equal(targets[s], large[target_key(s)][37:45])
    # same seed, one process: the same file; another seed: another file
    again = physical_cfg(tiny_cfg, tmp_path / "b")
    training_sets.generate_training_files(again, None, workers=1, progress=False, log=lambda m: None, space="physical")
    b, _ = read_all(again.training_file(None, 400, "physical"))
    for key in large:
        np.testing.assert_array_equal(large[key], b[key], err_msg=key)
    reseeded = physical_cfg(tiny_cfg, tmp_path / "c", "seed=1")
    training_sets.generate_training_files(reseeded, None, workers=1, progress=False, log=lambda m: None,
                                          space="physical")
    assert not np.array_equal(read_all(reseeded.training_file(None, 400, "physical"))[0]["resonances"],
                              large["resonances"])


def test_interrupted_physical_generation_resumes(tiny_cfg, monkeypatch, tmp_path):
    cfg = physical_cfg(tiny_cfg, tmp_path)
    monkeypatch.setattr(training_sets, "noisy_block", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        training_sets.generate_training_files(cfg, None, workers=1, progress=False, log=lambda m: None,
                                              space="physical")
    directory = cfg.training_file(None, 400, "physical").parent
    assert list(directory.iterdir()) == []
    monkeypatch.undo()
    training_sets.generate_training_files(cfg, None, workers=1, progress=False, log=lambda m: None, space="physical")
    messages = []
    training_sets.generate_training_files(cfg, None, workers=1, progress=False, log=messages.append, space="physical")
    assert len(messages) == 2 and all(m.startswith("kept") for m in messages)


def test_mixture_holds_both_kinds_interleaved(tiny_cfg, tmp_path):
    cfg = load_config("tiny", tiny_cfg.overrides + ["space=mixture"], tmp_path)
    assert ("mixture", 32) in generation_tasks(cfg) and not any(s == "chebyshev" for s, _ in generation_tasks(cfg))
    path, = [p for p in training_sets.generate_training_files(cfg, 32, workers=1, progress=False, log=lambda m: None,
                                                              space="mixture") if p.name.endswith("400.hdf5")]
    assert path.name == "training_data_mixture_Nb32_Nrho400.hdf5"
    data, attrs = read_all(path)
    kind = data["sample_space"]
    np.testing.assert_array_equal(kind, np.arange(400) % 2)            # half and half, interleaved
    cheb, phys = kind == training_sets.CHEBYSHEV_SAMPLE, kind == training_sets.PHYSICAL_SAMPLE
    assert np.isnan(data["E0"][phys]).all() and np.isnan(data["resonances"][cheb]).all()
    clean, targets = smu.correlators_and_targets(data["E0"][cheb][:10], data["coefficients"][cheb][:10], cfg)
    np.testing.assert_array_equal(clean, data["clean_correlators"][cheb][:10])
    tables = {k: data[k][phys][:10] for k in ps.PARAMETER_TABLES}
    clean, targets = ps.correlators_and_targets(tables, cfg)
    np.testing.assert_array_equal(clean, data["clean_correlators"][phys][:10])
    assert (ps.density(np.broadcast_to(np.linspace(0.01, 5, 500), (10, 500)), tables) >= 0).all()
    assert json.loads(attrs["functional_space"])["chebyshev"]["E0_min"] == cfg["E0_min"]
    # the mixture's Chebyshev half is its own stream, not the Chebyshev file's
    assert not set(data["E0"][cheb].tolist()) & set(training_sets.clean_block(cfg, 32, 0)[0]["E0"].tolist())


def test_preset_keys_and_defaults():
    paper = load_config("paper")                                  # the method as published
    assert paper["space"] == "chebyshev" and paper["interval_networks"]
    assert paper["calibration_space"] == "mixture"                # the interval networks' file at Nmax's N_b
    assert generation_tasks(paper) == ([("chebyshev", nb) for nb in paper["nb_list"]]
                                       + [("mixture", paper["ensembles"]["Nmax"]["nb"])])
    assert all("space" not in ens for ens in paper["ensembles"].values())
    reference = load_config("reference")                          # the recommended audience: all on the mixture
    assert reference["space"] == "mixture" and not reference["interval_networks"]
    assert reference["calibrated_centre"] == "audience"
    assert generation_tasks(reference) == [("mixture", nb) for nb in reference["nb_list"]
                                           if nb in {e["nb"] for e in reference["ensembles"].values()}]
    assert {ens["space"] for ens in reference["ensembles"].values()} == {"mixture"}
    prior = load_config("demo_prior")
    assert prior["ensembles"]["Nref_prior"]["space"] == "prior"
    physical_prior = load_config("demo_prior", ["prior_space=physical"])
    assert physical_prior["ensembles"]["Nref_prior"]["space"] == "physical"
    assert ("physical", None) in generation_tasks(physical_prior)
    audience = load_config("demo", ["space=physical"])
    assert {ens["space"] for ens in audience["ensembles"].values()} == {"physical"}
    with pytest.raises(ConfigError, match="second space"):
        load_config("demo_prior", ["space=physical", "prior_space=physical"])
    with pytest.raises(ConfigError, match="space"):
        load_config("demo", ["space=prior"])
