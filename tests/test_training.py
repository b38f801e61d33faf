"""The training worker (method §6-7, issue 3): split, schedule, fitting, resume, batched replicas,
task mapping, preemption and bad input.  Tiny sizes: a few seconds each."""
import csv
import dataclasses
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import training_runs
from checkpoints import load_checkpoint
from config import ConfigError, load_config
from devices import configure_threads
from io_utils import InputError
from pytorch_models_t32 import predict_replicas
from replica_group import lr_factor
from replica_streams import ReplicaNoise, StoredNoise, initial_model, noisy_items, split_samples
from tasks import training_groups
from training import train_replicas
from training_runs import Preemption, runs_from_task_ids
from training_sets import generate_training_files, load_training_data

REPO = Path(__file__).resolve().parents[1]
NOISE = f"noise_file={REPO / 'data' / 'standin_baryon_T64.h5'}"


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny steps gain nothing from threads, and oversubscribed threads on the shared cores made
    these tests 10-20x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """The tiny preset's training files, made once by the real generator (workers=1: 2 cores)."""
    root = tmp_path_factory.mktemp("training_data")
    cfg = load_config("tiny", [NOISE], root)
    for nb in cfg["nb_list"]:
        generate_training_files(cfg, nb, workers=1, progress=False, log=quiet)
    return root


@pytest.fixture
def make_cfg(data_root, tmp_path):
    """A tiny configuration rooted in a fresh directory that sees the shared training files."""
    (tmp_path / "training_datasets_T32").symlink_to(data_root / "training_datasets_T32")

    def make(*overrides, root=tmp_path):
        return load_config("tiny", [NOISE, *overrides], root)
    return make


def _history(cfg, ensemble, sigma, r):
    path = cfg.history_path(sigma, ensemble, r)
    with open(path) as f:
        rows = list(csv.DictReader(f))
    return np.array([[float(row[k]) for k in ("epoch", "train_loss", "val_loss", "lr")] for row in rows])


def _weights(cfg, ensemble, sigma, r):
    return torch.load(cfg.state_path(sigma, ensemble, r), weights_only=True)["model"]


class StopAfter:
    """Requests a stop at the n-th poll (the trainer polls once per step)."""

    def __init__(self, n):
        self.n = n

    @property
    def requested(self):
        self.n -= 1
        return self.n < 0


def quiet(*_):
    pass


# --- schedule, split, mapping ---------------------------------------------------------------------
def test_lr_schedule_epoch_indexing():
    cfg = load_config("reference")
    assert [lr_factor(cfg, e) for e in (0, 10, 24)] == [1.0, 1.0, 1.0]
    assert lr_factor(cfg, 25) == pytest.approx(1 / (1 + 1 * 4e-4), rel=1e-15)      # the 26th epoch
    assert lr_factor(cfg, 199) == pytest.approx(1 / (1 + 175 * 4e-4), rel=1e-15)   # the 200th epoch


def test_split_keeps_noisy_copies_of_a_sample_together():
    cfg = load_config("reference")
    train, val = split_samples(cfg, "Nmax", 0.44, 3, 1000)
    assert len(val) == 200 and len(train) == 800
    assert set(train).isdisjoint(val) and set(train) | set(val) == set(range(1000))
    n_noise = 20
    train_rows, val_rows = noisy_items(train, n_noise), noisy_items(val, n_noise)
    assert set(train_rows // n_noise) == set(train) and set(val_rows // n_noise) == set(val)
    assert len(set(train_rows) | set(val_rows)) == 1000 * n_noise
    again, _ = split_samples(cfg, "Nmax", 0.44, 3, 1000)
    other, _ = split_samples(cfg, "Nmax", 0.44, 4, 1000)
    assert np.array_equal(again, train) and not np.array_equal(other, train)


def test_task_ids_cover_every_run_exactly_once():
    # the paper's 40 runs (tests/test_intervals.py: the rest)
    cfg = load_config("reference", ["interval_networks=false"])
    expected = {(e, r, s) for e in ("Nmax", "Nref_b", "Nref_n", "Nref_rho") for r in range(5)
                for s in (0.44, 0.63)}
    singles = []
    for i in range(40):
        [(ens, sigma, [replica])] = runs_from_task_ids(cfg, str(i))
        singles.append((ens, replica, sigma))
    assert len(singles) == 40 and set(singles) == expected
    everything = runs_from_task_ids(cfg, "0-39")
    assert sorted((e, r, s) for e, s, rs in everything for r in rs) == sorted(expected)
    assert all(rs == [0, 1, 2, 3, 4] for _, _, rs in everything) and len(everything) == 8
    for ens, sigma, indices in training_groups(cfg):        # what the Slurm group jobs pass
        assert runs_from_task_ids(cfg, f"{indices[0]}-{indices[-1]}") == [(ens, sigma, [0, 1, 2, 3, 4])]
    with pytest.raises(ConfigError, match="training tasks 0..39"):
        runs_from_task_ids(cfg, "40")


def test_threads_follow_slurm(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("SLURM_CPUS_PER_TASK", "1")
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        assert configure_threads() == 1
    finally:
        torch.set_num_threads(before)


# --- training ------------------------------------------------------------------------------------
def _initial_train_loss(cfg, ensemble, sigma, r):
    data = load_training_data(cfg, ensemble, sigma)
    model = initial_model(cfg, cfg["ensembles"][ensemble]["arch"], ensemble, sigma, r, 32, 47)
    rows = torch.as_tensor(noisy_items(split_samples(cfg, ensemble, sigma, r, data.n_samples)[0], data.n_noise))
    inputs, targets = torch.from_numpy(data.inputs), torch.from_numpy(data.targets)
    with torch.no_grad():
        return (model(inputs[rows]) - targets[rows // data.n_noise]).abs().mean().item()


def test_tiny_set_is_fitted_far_below_its_initial_loss(make_cfg):
    cfg = make_cfg("lr=3e-3", "max_epochs=12", "patience=12", "ensembles.Nref_n.nrho=200")
    status = train_replicas(cfg, "Nref_n", 0.44, [0], device="cpu", log=quiet)
    assert status == {0: "finished"}
    history = _history(cfg, "Nref_n", 0.44, 0)
    initial = _initial_train_loss(cfg, "Nref_n", 0.44, 0)
    assert history[-1, 1] < 0.25 * initial and history[:, 2].min() < 0.25 * initial
    model, meta = load_checkpoint(cfg.checkpoint(0.44, "Nref_n", 0), cfg=cfg, arch="arcS")
    assert meta["best_val_loss"] == pytest.approx(history[:, 2].min(), rel=1e-12)
    assert meta["epoch"] == int(history[np.argmin(history[:, 2]), 0])


@pytest.mark.parametrize("noise", ["stored", "fresh", "replica"])
def test_resume_equals_uninterrupted(make_cfg, tmp_path, noise):
    """Interrupted mid-epoch (step 13 of 10-step epochs) and resumed == one run, same seed, CPU."""
    settings = ("max_epochs=3", "patience=3", "ensembles.Nref_n.nrho=200")
    whole = make_cfg(*settings)
    train_replicas(whole, "Nref_n", 0.63, [1], noise, device="cpu", log=quiet)
    (tmp_path / "second").mkdir()
    (tmp_path / "second" / "training_datasets_T32").symlink_to(tmp_path / "training_datasets_T32")
    parts = make_cfg(*settings, root=tmp_path / "second")
    assert train_replicas(parts, "Nref_n", 0.63, [1], noise, "cpu", StopAfter(13), quiet) == {1: "preempted"}
    assert len(_history(parts, "Nref_n", 0.63, 1)) == 1
    assert train_replicas(parts, "Nref_n", 0.63, [1], noise, "cpu", log=quiet) == {1: "finished"}
    np.testing.assert_array_equal(_history(parts, "Nref_n", 0.63, 1), _history(whole, "Nref_n", 0.63, 1))
    a, b = _weights(whole, "Nref_n", 0.63, 1), _weights(parts, "Nref_n", 0.63, 1)
    assert all(torch.equal(a[k], b[k]) for k in a)
    messages = []
    assert train_replicas(parts, "Nref_n", 0.63, [1], noise, "cpu", log=messages.append) == {1: "already finished"}
    assert "nothing to do" in messages[0]


def test_batched_replicas_equal_separate_runs(make_cfg, tmp_path):
    """Two replicas trained as one batched model vs each alone; with patience 1 and a large lr
    they stop at different epochs (3 and 6), so removing a stopped replica from the stack is
    exercised."""
    settings = ("lr=5e-3", "max_epochs=6", "patience=1", "ensembles.Nref_n.nrho=200", "noise=stored")
    together = make_cfg(*settings)
    train_replicas(together, "Nref_n", 0.44, [0, 1], device="cpu", log=quiet)
    (tmp_path / "alone").mkdir()
    (tmp_path / "alone" / "training_datasets_T32").symlink_to(tmp_path / "training_datasets_T32")
    alone = make_cfg(*settings, root=tmp_path / "alone")
    lengths = []
    for r in (0, 1):
        train_replicas(alone, "Nref_n", 0.44, [r], device="cpu", log=quiet)
        h_together, h_alone = _history(together, "Nref_n", 0.44, r), _history(alone, "Nref_n", 0.44, r)
        assert h_together.shape == h_alone.shape
        np.testing.assert_allclose(h_together, h_alone, rtol=2e-5, atol=1e-7)
        a, b = _weights(together, "Nref_n", 0.44, r), _weights(alone, "Nref_n", 0.44, r)
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)
        lengths.append(len(h_alone))
    assert lengths[0] != lengths[1], "precondition: the replicas should stop at different epochs"


def test_checkpoint_predicts_without_training_file(make_cfg, tmp_path):
    cfg = make_cfg("noise=stored")           # validated on the stored copies, as checked below
    train_replicas(cfg, "Nref_rho", 0.44, [0, 1], device="cpu", log=quiet)
    data = load_training_data(cfg, "Nref_rho", 0.44)
    val = [torch.as_tensor(noisy_items(split_samples(cfg, "Nref_rho", 0.44, r, data.n_samples)[1], data.n_noise))
           for r in (0, 1)]
    (tmp_path / "training_datasets_T32").unlink()                 # no training file any more
    loaded = [load_checkpoint(cfg.checkpoint(0.44, "Nref_rho", r), cfg=cfg) for r in (0, 1)]
    models = [m for m, _ in loaded]
    for r, (_, meta) in enumerate(loaded):
        np.testing.assert_array_equal(meta["mu"], data.mu)
        assert meta["sigma_gev"] == 0.44 and meta["arch"] == "arcL" and meta["replica"] == r
        P = predict_replicas(models, torch.from_numpy(data.inputs)[val[r]])[:, r]
        l1 = (P - torch.from_numpy(data.targets)[val[r] // data.n_noise]).abs().mean().item()
        assert l1 == pytest.approx(meta["best_val_loss"], rel=1e-5)


# --- the noise a replica trains on (method §7, issue 10) -----------------------------------------------
def _noise_of(instance, data):
    """The noise s·L z of standardised noisy copies [N·N_noise, n_t], divided by s, [N·N_noise, n_t]."""
    noisy = instance.astype(np.float64).reshape(data.n_samples, data.n_noise, -1) * data.gamma + data.mu
    scale = data.clean[:, 0] / data.noise.mean[0]
    return ((noisy - data.clean[:, None, :]) / scale[:, None, None]).reshape(-1, len(data.t))


def test_replicas_get_noise_of_their_own(make_cfg):
    cfg = make_cfg()
    assert cfg["noise"] == "replica"                       # the default of every preset
    data = load_training_data(cfg, "Nref_n", 0.44, noisy=True, clean=True)
    pair = ReplicaNoise(cfg, data, "Nref_n", 0.44, [0, 1], "cpu").inputs.numpy()
    alone = ReplicaNoise(cfg, data, "Nref_n", 0.44, [1], "cpu").inputs.numpy()
    stored = StoredNoise(cfg, data, "Nref_n", 0.44, [0, 1], "cpu").inputs.numpy()
    assert pair.shape == (2, *stored.shape)
    np.testing.assert_array_equal(alone[0], pair[1])       # not a function of the grouping
    for own in pair:                                       # every row differs from the others'
        assert np.all(np.any(own != stored, axis=1))
    assert np.all(np.any(pair[0] != pair[1], axis=1))
    # and independent: the two replicas' noises are uncorrelated at every time slice
    z = [_noise_of(own, data) for own in pair]
    correlation = (z[0] * z[1]).mean(axis=0) / np.sqrt((z[0] ** 2).mean(axis=0) * (z[1] ** 2).mean(axis=0))
    assert np.abs(correlation).max() < 5 / np.sqrt(len(z[0]))


def test_replica_noise_has_the_lattice_covariance(make_cfg):
    """The copies' noise, divided by s, has covariance Σ_latt: whitened with L^-1 it is N(0, I) to
    within the sampling error of 20,000 draws -- and a 10 % error in the scale would be seen."""
    cfg = make_cfg("n_noise=5")
    data = load_training_data(cfg, "Nref_n", 0.44, noisy=False, clean=True)
    data = dataclasses.replace(data, clean=np.tile(data.clean, (10, 1)), n_samples=10 * data.n_samples,
                               n_noise=5)
    instance = ReplicaNoise(cfg, data, "Nref_n", 0.44, [0], "cpu").inputs.numpy()[0]
    z = _noise_of(instance, data)
    n = len(z)
    assert n == 20_000

    def deviation(factor):
        w = np.linalg.solve(data.noise.chol * factor, z.T).T
        return np.abs(w.mean(axis=0)).max() * np.sqrt(n), np.abs(np.cov(w.T) - np.eye(len(data.t))).max()

    mean_dev, cov_dev = deviation(1.0)
    assert mean_dev < 5 and cov_dev < 5 * np.sqrt(2 / n)
    assert deviation(1.1)[1] > 5 * np.sqrt(2 / n)          # the check can fail


def test_noise_mode_is_recorded_and_checked_on_resume(make_cfg):
    cfg = make_cfg("max_epochs=1")
    assert train_replicas(cfg, "Nref_n", 0.44, [0], device="cpu", log=quiet) == {0: "finished"}
    _, meta = load_checkpoint(cfg.checkpoint(0.44, "Nref_n", 0))
    assert meta["noise"] == "replica" and json.loads(meta["config"])["values"]["noise"] == "replica"
    state = torch.load(cfg.state_path(0.44, "Nref_n", 0), weights_only=True)
    assert state["identity"]["noise"] == "replica"
    with pytest.raises(InputError, match="noise='replica', this run has 'stored'"):
        train_replicas(make_cfg("max_epochs=1", "noise=stored"), "Nref_n", 0.44, [0], device="cpu", log=quiet)
    with pytest.raises(ConfigError, match="noise='shared': expected one of"):
        make_cfg("noise=shared")


# --- preemption and bad input ---------------------------------------------------------------------
def test_preemption_flag_on_signals():
    with Preemption() as stop:
        assert not stop.requested
        os.kill(os.getpid(), signal.SIGUSR1)
        assert stop.requested and stop.signal_name == "SIGUSR1"
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


def test_worker_saves_state_on_sigterm(make_cfg, tmp_path):
    cfg = make_cfg("max_epochs=200", "patience=200")
    args = [sys.executable, str(REPO / "hpc_train_sigma.py"), "--preset", "tiny", "--root", str(tmp_path),
            "--set", NOISE, "--set", "max_epochs=200", "--set", "patience=200",
            "--ensemble", "Nref_n", "--replica", "0", "--sigma", "0.44", "--device", "cpu"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    history = cfg.history_path(0.44, "Nref_n", 0)
    import time
    deadline = time.time() + 60
    while not history.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == training_runs.EXIT_PREEMPTED, out
    assert "SIGTERM received" in out and "state saved" in out
    state = torch.load(cfg.state_path(0.44, "Nref_n", 0), weights_only=True)
    assert not state["finished"] and state["epoch"] >= 1 and len(state["history"]) == state["epoch"]


def test_bad_inputs_give_clear_messages(make_cfg, tmp_path):
    empty = make_cfg(root=tmp_path / "empty")
    with pytest.raises(InputError, match="no such file.*generate_full_dataset_sigma.py --preset tiny --nb 32"):
        train_replicas(empty, "Nmax", 0.44, [0], device="cpu", log=quiet)
    with pytest.raises(ConfigError, match="not among the preset's sigmas_gev"):
        train_replicas(make_cfg(), "Nmax", 0.5, [0], device="cpu", log=quiet)
    with pytest.raises(InputError, match="no targets for sigma=0.8"):
        train_replicas(make_cfg("sigmas_gev=[0.44, 0.63, 0.8]"), "Nmax", 0.8, [0], device="cpu", log=quiet)
    with pytest.raises(InputError, match="key 't_max': the file was generated with t_max=32, the settings say 33"):
        train_replicas(make_cfg("t_min=2", "t_max=33"), "Nmax", 0.44, [0], device="cpu", log=quiet)
    cfg = make_cfg("max_epochs=1")
    train_replicas(cfg, "Nref_n", 0.44, [0], device="cpu", log=quiet)
    with pytest.raises(InputError, match="another architecture"):
        train_replicas(make_cfg("max_epochs=1", "ensembles.Nref_n.arch=arcL"), "Nref_n", 0.44, [0],
                       device="cpu", log=quiet)
    with pytest.raises(InputError, match="max_epochs: 1 -> 2"):
        train_replicas(make_cfg("max_epochs=2"), "Nref_n", 0.44, [0], device="cpu", log=quiet)
