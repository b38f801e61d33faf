"""The interval networks (interval_networks.py): the pinball loss against a known law, their
training (layout, early stopping on the held-out pinball loss, resume), their place in the task
map and the pipeline check, and that the paper's networks do not change.  Tiny sizes."""
import subprocess
import sys

import numpy as np
import pytest
import torch
from scipy import optimize, stats

# the tiny preset's training files, one-thread fixture and helpers of the training tests
from test_training import NOISE, REPO, StopAfter, _history, _weights, data_root, make_cfg, one_thread, quiet  # noqa: F401

import run_pipeline
from checkpoints import load_checkpoint
from config import load_config
from interval_networks import load_interval_networks, pinball_loss, predict_quantiles
from interval_outputs import LAYOUT, QUANTILE_LEVELS, interval_checkpoints, split_quantiles
from replica_streams import initial_model, noisy_items, split_samples
from roles import INTERVAL_RUN
from settings import ConfigError
from sigma_model_utils import standardise
from tasks import ensemble_space, generated_nrhos, generation_tasks, training_groups, training_tasks
from training import train_replicas
from training_runs import runs_from_task_ids
from training_sets import generate_training_files, load_training_data

PLAIN = ["interval_networks=false", "calibrated_centre=audience"]      # an audience without interval networks


# --- the loss against the law ----------------------------------------------------------------------
def test_levels_are_the_normal_one_sigma_quantiles():
    np.testing.assert_allclose(QUANTILE_LEVELS, stats.norm.cdf([-1.0, 0.0, 1.0]), rtol=1e-14, atol=0)


@pytest.mark.parametrize("law", [stats.lognorm(s=0.9), stats.expon(scale=2.0)])
def test_pinball_minimiser_is_the_quantile_of_a_skewed_law(law):
    """The mean pinball loss over samples of a skewed law, minimised over a constant q for each
    level, lands on the law's quantile within the sampling error of the sample quantile,
    √(τ(1−τ)/n) / f(q_τ)."""
    n = 40_000
    y = torch.as_tensor(law.rvs(size=n, random_state=np.random.default_rng(7)))[:, None]   # [n, N_E = 1]

    def mean_loss(q, level):
        outputs = torch.zeros(n, len(QUANTILE_LEVELS), dtype=torch.float64)
        outputs[:, level] = q
        return pinball_loss(outputs, y)[:, level].mean().item()

    for level, tau in enumerate(QUANTILE_LEVELS):
        lo, hi = law.ppf(0.01), law.ppf(0.99)
        found = optimize.minimize_scalar(mean_loss, bounds=(lo, hi), args=(level,), method="bounded",
                                         options={"xatol": 1e-7}).x
        exact = law.ppf(tau)
        error = np.sqrt(tau * (1 - tau) / n) / law.pdf(exact)
        assert abs(found - exact) < 4 * error, (tau, found, exact, error)
        # the check can fail: the mirrored level's quantile of this skewed law is far away
        assert abs(law.ppf(1 - tau) - exact) > 20 * error or tau == 0.5


def test_split_quantiles_is_the_layout():
    outputs = np.arange(2 * 3 * 5).reshape(2, 15)
    q_lo, q_50, q_hi = split_quantiles(outputs)
    np.testing.assert_array_equal(q_lo, outputs[:, :5])
    np.testing.assert_array_equal(q_50, outputs[:, 5:10])
    np.testing.assert_array_equal(q_hi, outputs[:, 10:])
    assert [q.shape for q in split_quantiles(torch.zeros(4, 2, 141))] == [(4, 2, 47)] * 3
    with pytest.raises(ValueError, match="3·N_E"):
        split_quantiles(np.zeros((2, 47)))


# --- training ---------------------------------------------------------------------------------------
def test_interval_streams_are_their_own_and_fixed_by_the_seed(tiny_cfg):
    cfg = tiny_cfg
    own = split_samples(cfg, INTERVAL_RUN, 0.44, 0, 400)[0]
    assert np.array_equal(own, split_samples(cfg, INTERVAL_RUN, 0.44, 0, 400)[0])
    assert not np.array_equal(own, split_samples(cfg, "Nmax", 0.44, 0, 400)[0])
    a = initial_model(cfg, "arcL", INTERVAL_RUN, 0.44, 0, 32, 141).state_dict()
    b = initial_model(cfg, "arcL", INTERVAL_RUN, 0.44, 0, 32, 141).state_dict()
    c = initial_model(cfg, "arcL", "Nmax", 0.44, 0, 32, 141).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a) and not torch.equal(a["fc1.weight"], c["fc1.weight"])


def _numpy_pinball(q, y):
    """max(τ(y−q), (τ−1)(y−q)) written out from the formula: q [M, 3, N_E], y [M, N_E] -> mean."""
    u = y[:, None, :] - q
    tau = np.array(QUANTILE_LEVELS)[None, :, None]
    return np.maximum(tau * u, (tau - 1) * u).mean()


def test_interval_network_checkpoint_layout_and_held_out_loss(make_cfg):
    """A trained interval network: in Nmax's folder under interval_{r}, self-contained, with its
    levels and layout recorded; its best validation loss is the pinball loss on the held-out
    samples (computed here from the formula); its medians and quantiles come out in order."""
    cfg = make_cfg("noise=stored", "max_epochs=2", "lr=2e-3", "calibration_space=training")
    assert train_replicas(cfg, INTERVAL_RUN, 0.44, [0, 1], device="cpu", log=quiet) == {0: "finished", 1: "finished"}
    paths = interval_checkpoints(cfg, 0.44)
    assert [p.relative_to(cfg.root).as_posix() for p in paths] == [
        f"trained_models_sigma44/Nmax/interval_{r}_best.pth" for r in (0, 1)]
    assert cfg.history_path(0.44, INTERVAL_RUN, 1).name == "interval_1_best_history.csv"
    assert not (cfg.root / "trained_models_sigma44" / "Nmax" / "replica_0_best.pth").exists()
    model, meta = load_checkpoint(paths[0], cfg=cfg, arch="arcL")
    assert meta["n_out"] == 3 * 47 and meta["output_layout"] == LAYOUT and meta["loss"] == "pinball"
    assert meta["quantile_levels"] == list(QUANTILE_LEVELS) and meta["ensemble"] == INTERVAL_RUN

    data = load_training_data(cfg, "Nmax", 0.44)      # calibration_space=training: Nmax's own file
    val = noisy_items(split_samples(cfg, INTERVAL_RUN, 0.44, 0, data.n_samples)[1], data.n_noise)
    with torch.no_grad():
        q = model(torch.from_numpy(data.inputs[val])).double().numpy().reshape(len(val), 3, 47)
    assert _numpy_pinball(q, data.targets[val // data.n_noise].astype(np.float64)) == pytest.approx(
        meta["best_val_loss"], rel=1e-5)

    models, metas = load_interval_networks(cfg, 0.44)
    correlators = data.inputs[:5].astype(np.float64) * data.gamma + data.mu
    q_lo, q_50, q_hi = predict_quantiles(models, metas, correlators)
    assert q_lo.shape == q_50.shape == q_hi.shape == (5, 2, 47)
    with torch.no_grad():
        direct = models[1](torch.from_numpy(standardise(correlators, metas[0]["mu"], metas[0]["gamma"])))
    np.testing.assert_allclose(q_hi[:, 1], direct[:, 94:].numpy(), rtol=1e-6, atol=1e-7)


def test_resumed_interval_network_equals_uninterrupted(make_cfg, tmp_path):
    """Stopped at step 13 of 10-step epochs and continued == one run, bitwise (CPU, replica noise)."""
    settings = ("max_epochs=3", "patience=3", "ensembles.Nmax.nrho=200", "calibration_space=training")
    whole = make_cfg(*settings)
    assert train_replicas(whole, INTERVAL_RUN, 0.63, [0, 1], device="cpu", log=quiet) == {0: "finished", 1: "finished"}
    (tmp_path / "second").mkdir()
    (tmp_path / "second" / "training_datasets_T32").symlink_to(tmp_path / "training_datasets_T32")
    parts = make_cfg(*settings, root=tmp_path / "second")
    stopped = train_replicas(parts, INTERVAL_RUN, 0.63, [0, 1], device="cpu", stop=StopAfter(13), log=quiet)
    assert stopped == {0: "preempted", 1: "preempted"}
    assert len(_history(parts, INTERVAL_RUN, 0.63, 0)) == 1
    assert train_replicas(parts, INTERVAL_RUN, 0.63, [0, 1], device="cpu", log=quiet) == {0: "finished", 1: "finished"}
    for r in (0, 1):
        np.testing.assert_array_equal(_history(parts, INTERVAL_RUN, 0.63, r), _history(whole, INTERVAL_RUN, 0.63, r))
        a, b = _weights(whole, INTERVAL_RUN, 0.63, r), _weights(parts, INTERVAL_RUN, 0.63, r)
        assert all(torch.equal(a[k], b[k]) for k in a)
        best_a = load_checkpoint(whole.checkpoint(0.63, INTERVAL_RUN, r))[0].state_dict()
        best_b = load_checkpoint(parts.checkpoint(0.63, INTERVAL_RUN, r))[0].state_dict()
        assert all(torch.equal(best_a[k], best_b[k]) for k in best_a)


def test_paper_networks_do_not_change_with_interval_networks(make_cfg, tmp_path):
    """Nmax's replica trained with and without interval_networks: the same weights, bit for bit,
    and the same history."""
    (tmp_path / "off").mkdir()
    (tmp_path / "off" / "training_datasets_T32").symlink_to(tmp_path / "training_datasets_T32")
    on = make_cfg("max_epochs=2")
    off = make_cfg("max_epochs=2", *PLAIN, root=tmp_path / "off")
    assert on["interval_networks"] and not off["interval_networks"]
    for cfg in (on, off):
        train_replicas(cfg, "Nmax", 0.44, [0], device="cpu", log=quiet)
    a = load_checkpoint(on.checkpoint(0.44, "Nmax", 0))[0].state_dict()
    b = load_checkpoint(off.checkpoint(0.44, "Nmax", 0))[0].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    np.testing.assert_array_equal(_history(on, "Nmax", 0.44, 0), _history(off, "Nmax", 0.44, 0))


# --- the task map and the pipeline -------------------------------------------------------------------
@pytest.mark.parametrize("preset", ["tiny", "reference", "demo_prior"])
def test_task_map_has_the_interval_tasks_exactly_when_on(preset, tmp_path):
    on = load_config(preset, ["interval_networks=true"], tmp_path)
    off = load_config(preset, PLAIN, tmp_path)
    n_r, sigmas = on["n_replicas"], on["sigmas_gev"]
    paper = training_tasks(off)
    assert all(ens != INTERVAL_RUN for ens, _, _ in paper)
    assert training_tasks(on) == paper + [(INTERVAL_RUN, r, s) for s in sigmas for r in range(n_r)]
    assert training_groups(on)[:len(training_groups(off))] == training_groups(off)
    for ens, sigma, ids in training_groups(on)[len(training_groups(off)):]:
        assert ens == INTERVAL_RUN
        assert runs_from_task_ids(on, f"{ids[0]}-{ids[-1]}") == [(INTERVAL_RUN, sigma, list(range(n_r)))]
    for cfg in (on, off):       # what the Slurm scripts ask for their array sizes
        for stage, n in (("training", len(training_tasks(cfg))), ("training-groups", len(training_groups(cfg)))):
            out = subprocess.run([sys.executable, str(REPO / "config.py"), "--preset", preset,
                                  *(["--set", "interval_networks=false", "--set", "calibrated_centre=audience"]
                                    if cfg is off else ["--set", "interval_networks=true"]),
                                  "array-size", stage], capture_output=True, text=True, check=True)
            assert int(out.stdout) == n
    interval_files = {p for s in sigmas for p in interval_checkpoints(on, s)}
    assert interval_files <= set(run_pipeline.expected_outputs(on)["training"])
    assert not interval_files & set(run_pipeline.expected_outputs(off)["training"])
    trainings = [cmd for stage, cmd in run_pipeline.tasks(on) if stage == "training"]
    assert len(trainings) == len(training_groups(on)) == len(training_groups(off)) + len(sigmas)


def test_interval_settings_are_checked(tiny_cfg):
    with pytest.raises(ConfigError, match="calibration_space='prior': expected one of"):
        load_config("tiny", ["calibration_space=prior"])
    with pytest.raises(ConfigError, match="interval_networks=true needs the ensemble Nmax"):
        load_config("tiny", ['ensembles={"Nref_b": {"arch": "arcL", "nb": 16, "nrho": 400}}'])
    with pytest.raises(ConfigError, match="calibrated_centre=paper needs the interval networks' width"):
        load_config("tiny", ["interval_networks=false", "calibrated_centre=paper"])
    off = load_config("tiny", [*PLAIN, NOISE], tiny_cfg.root)
    with pytest.raises(ConfigError, match="ensemble 'Nmax_interval': expected one of"):
        train_replicas(off, INTERVAL_RUN, 0.44, [0], device="cpu", log=quiet)


def test_check_notices_a_missing_interval_checkpoint(tmp_path, capsys):
    cfg = load_config("tiny", [], tmp_path)
    lost = cfg.checkpoint(0.63, INTERVAL_RUN, 1)
    for path in run_pipeline.expected_outputs(cfg)["training"]:
        if path != lost:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
    assert run_pipeline.main(["--check", "--preset", "tiny", "--root", str(tmp_path)]) == 1
    line = next(x for x in capsys.readouterr().out.splitlines() if x.strip().startswith("training:"))
    n = len(run_pipeline.expected_outputs(cfg)["training"])
    assert f"{n - 1}/{n} files" in line and "MISSING" in line and str(lost) in line
    lost.touch()
    run_pipeline.main(["--check", "--preset", "tiny", "--root", str(tmp_path)])
    line = next(x for x in capsys.readouterr().out.splitlines() if x.strip().startswith("training:"))
    assert f"{n}/{n} files" in line and "MISSING" not in line


def test_mixture_calibration_space_is_generated_and_trained_on(tiny_cfg):
    """calibration_space=mixture: generation makes the mixture file at Nmax's N_b and N_ρ (and only
    that one beyond the audience's), and the interval networks train on it; the audience does not."""
    cfg = load_config("tiny", [*tiny_cfg.overrides, "calibration_space=mixture"], tiny_cfg.root)
    own = load_config("tiny", [*tiny_cfg.overrides, "calibration_space=training"], tiny_cfg.root)
    nmax = cfg["ensembles"]["Nmax"]
    assert generation_tasks(cfg) == generation_tasks(own) + [("mixture", nmax["nb"])]
    assert generated_nrhos(cfg, "mixture") == [nmax["nrho"]]
    assert ensemble_space(cfg, INTERVAL_RUN) == "mixture" and ensemble_space(cfg, "Nmax") == "chebyshev"
    assert generation_tasks(load_config("tiny", ["calibration_space=mixture", *PLAIN])) \
        == generation_tasks(own)
    paths = generate_training_files(cfg, nmax["nb"], workers=1, progress=False, log=quiet, space="mixture")
    assert paths == [cfg.training_file(nmax["nb"], nmax["nrho"], "mixture")]
    data = load_training_data(cfg, INTERVAL_RUN, 0.44)
    assert data.path == paths[0] and data.n_samples == nmax["nrho"]


def test_the_calibration_space_is_known_without_interval_networks():
    """tasks.calibration_space is the interval networks' training space where they exist, and the same
    space without them (the validation family calibration_space is drawn from it either way)."""
    from tasks import calibration_space
    for overrides in ([], ["calibration_space=training"], ["space=mixture", "calibration_space=training"],
                      ["space=physical"]):
        on = load_config("tiny", overrides)
        off = load_config("tiny", [*overrides, *PLAIN])
        assert calibration_space(on) == calibration_space(off) == ensemble_space(on, INTERVAL_RUN)
    assert calibration_space(load_config("tiny", ["calibration_space=training", *PLAIN])) \
        == "chebyshev"
    import validation
    drawn = validation.draw_family(load_config("tiny", PLAIN), "calibration_space", 2)
    assert [d.parameters["space"] for d in drawn] == ["mixture", "mixture"]
