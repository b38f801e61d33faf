"""The failures a cluster produces (issue 11): bad settings, unwritable or full disks, reruns of
finished stages, an interrupted or killed local runner."""
import contextlib
import importlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

import analysis
import prediction
import run_pipeline
import training_sets
from benchmarks.bench_prediction import write_random_audience
from config import ConfigError, load_config
from io_utils import InputError, OutputError, atomic_output, save_torch

REPO = Path(__file__).resolve().parents[1]
NOISE = str(REPO / "data" / "standin_baryon_T64.h5")


# --- item 4: one validated schema, one way to fail ----------------------------------------------
BAD_SETTINGS = [  # (the --set of issue 11, the key the message must name)
    ("n_noise=abc", "n_noise"), ("batch_size=0", "batch_size"), ("rng_block=0", "rng_block"),
    ("seed=abc", "seed"), ("T=abc", "T"), ("sigmas_gev=[0]", "sigmas_gev"), ("a_inv_gev=0", "a_inv_gev"),
    ("ensembles=3", "ensembles"), ("ensembles.Nmax.arch=arcXL", "ensembles.Nmax.arch"),
    ("sigmas_gev=[-0.44,0.63]", "sigmas_gev"), ("batch_size=-1", "batch_size"),
    ("max_epochs=0", "max_epochs"), ("n_replicas=0", "n_replicas"), ("n_boot=1", "n_boot"),
    ("t_min=0", "t_min"), ("t_min=32", "t_min"), ("t_max=64", "t_max"), ("lr=NaN", "lr"),
    ("n_noise=2.5", "n_noise"), ("val_fraction=1", "val_fraction"), ("kernel=cosh", "kernel"),
    ('ensembles={"X": {"arch": "arcL", "nb": 32}}', "ensembles.X"), ("nrho_list=[400,200]", "nrho_list"),
]


@pytest.mark.parametrize("override,key", BAD_SETTINGS)
def test_schema_refuses_each_bad_setting_naming_its_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config("tiny", [override])


def test_every_preset_and_the_stand_in_noise_pass_the_schema():
    for preset in ("reference", "demo", "tiny"):
        load_config(preset)


# every script with a command line: (module, how its main is called, extra arguments)
SCRIPTS = [
    ("generate_full_dataset_sigma", None, ["--nb", "16"]),
    ("hpc_train_sigma", None, ["--task-id", "0"]),
    ("generate_delta_mock", None, []),
    ("make_noise_file", None, ["samples.npy"]),
    ("predict_on_O3_mock_sigma", None, []),
    ("predict_on_delta_tanh", None, []),
    ("predict_on_user_data", None, ["x.h5", "--name", "mine"]),
    ("analyze_O3_mock_sigma", None, []),
    ("analyze_delta_tanh_mock", None, []),
    ("analyze_user_data", None, ["--name", "mine"]),
    ("run_pipeline", None, []),
    ("config", None, ["show"]),
    ("benchmarks.validate_coverage", None, ["--no-train"]),
    ("run_etas_example", None, []),
]


@pytest.mark.parametrize("module,_,extra", SCRIPTS)
def test_every_script_reports_a_bad_setting_in_one_line_with_status_2(module, _, extra, tmp_path, capsys):
    main = importlib.import_module(module).main
    status = main(["--preset", "tiny", "--root", str(tmp_path), "--set", "batch_size=0", *extra])
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and err.startswith("error: batch_size=0: expected an integer >= 1")


def test_a_real_bug_keeps_its_traceback(tmp_path, monkeypatch):
    import generate_full_dataset_sigma as gen

    def bug(*args, **kwargs):
        raise ValueError("a bug, not bad input")
    monkeypatch.setattr(gen, "generate_training_files", bug)
    with pytest.raises(ValueError, match="a bug"):
        gen.main(["--preset", "tiny", "--root", str(tmp_path), "--nb", "16"])


def test_from_a_shell_a_bad_setting_is_one_line_and_status_2(tmp_path):
    run = subprocess.run([sys.executable, str(REPO / "generate_full_dataset_sigma.py"), "--preset", "tiny",
                          "--root", str(tmp_path), "--nb", "16", "--set", "n_noise=abc"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert run.stderr == "error: n_noise='abc': expected an integer >= 1 -- noisy copies N_noise per training sample\n"
    assert not any(tmp_path.iterdir())


def test_a_mistyped_root_gets_no_output_folder(tmp_path, capsys):
    """Stopped by its missing inputs, a stage leaves no empty output folder under the root (the
    calibration names the training command of the first missing network)."""
    import calibrate_sigma
    root = tmp_path / "typo"
    root.mkdir()
    assert calibrate_sigma.main(["--preset", "tiny", "--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "replica_0_best.pth: missing" in err
    assert "`python hpc_train_sigma.py --preset tiny --ensemble Nmax --replica 0 --sigma 0.44 --root " in err
    assert list(root.iterdir()) == []
    assert analysis.main("analyze", "delta_tanh", ["--preset", "tiny", "--root", str(root)]) == 2
    assert [p.name for p in root.iterdir()] == ["locks"]


@pytest.mark.parametrize("jobs", ["0", "-1"])
def test_run_pipeline_refuses_no_tasks_at_once(jobs, tmp_path, capsys):
    assert run_pipeline.main(["--preset", "tiny", "--root", str(tmp_path / "root"), "--jobs", jobs]) == 2
    assert capsys.readouterr().err == f"error: --jobs {jobs}: expected an integer >= 1 (tasks side by side)\n"
    assert not (tmp_path / "root").exists()


# --- item 6: pre-flight checks, full and read-only disks ----------------------------------------
@contextlib.contextmanager
def tmpfs(path: Path, options: str):
    """A tmpfs mounted at ``path`` (root only), or the test is skipped with the reason."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    path.mkdir()
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                           capture_output=True, text=True)
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mount.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


@pytest.fixture
def read_only_root(tmp_path):
    root = tmp_path / "ro"
    if os.geteuid() != 0:           # permissions stop anyone but root
        root.mkdir()
        root.chmod(0o555)
        yield root
        root.chmod(0o755)
        return
    with tmpfs(root, "ro,size=64k"):
        yield root


@pytest.mark.parametrize("module,extra", [("generate_full_dataset_sigma", ["--nb", "16"]),
                                          ("hpc_train_sigma", ["--task-id", "0"]),
                                          ("generate_delta_mock", []),
                                          ("predict_on_delta_tanh", []),
                                          ("analyze_delta_tanh_mock", [])])
def test_each_stage_checks_its_output_directory_before_computing(module, extra, read_only_root, capsys):
    """Without the check, training would report the missing training file and prediction the
    missing checkpoints; the read-only root is named first, in one line."""
    main = importlib.import_module(module).main
    status = main(["--preset", "tiny", "--root", str(read_only_root), "--set", f"noise_file={NOISE}", *extra])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1
    assert f"error: {read_only_root}/" in err and "is not writable" in err


def test_generation_checks_the_free_space_first(tmp_path, capsys):
    cfg = load_config("tiny", [], tmp_path)
    need = sum(training_sets.training_file_bytes(cfg, 32, n) for n in cfg["nrho_list"])
    with tmpfs(tmp_path / "small", f"size={need // 2}") as root:
        import generate_full_dataset_sigma as gen
        assert gen.main(["--preset", "tiny", "--root", str(root), "--nb", "32"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "GB free, but the 2 training file(s) of N_b=32 need about" in err
        assert not any(root.rglob("*.hdf5*"))


def test_training_file_size_estimate_is_an_upper_bound_close_to_the_truth(tiny_cfg):
    training_sets.generate_training_files(tiny_cfg, 32, workers=1, progress=False, log=lambda *a: None)
    for nrho in tiny_cfg["nrho_list"]:
        size = tiny_cfg.training_file(32, nrho).stat().st_size
        assert size <= training_sets.training_file_bytes(tiny_cfg, 32, nrho) <= size + 2**18


def test_a_disk_filling_up_while_writing_is_one_error_and_leaves_nothing(tmp_path, monkeypatch):
    """The estimate passed but the disk fills (another job): generation, an HDF5 result and a
    torch file each end in one OutputError naming the file; no temporary is left."""
    with tmpfs(tmp_path / "full", "size=400k") as root:
        monkeypatch.setattr(training_sets, "check_free_space", lambda *args: None)
        cfg = load_config("tiny", [], root)
        with pytest.raises(OutputError, match=r"training_data_Nb32_Nrho\d+\.hdf5: cannot write: the disk is full"):
            training_sets.generate_training_files(cfg, 32, workers=1, progress=False, log=lambda *a: None)
        with pytest.raises(OutputError, match="x.hdf5: cannot write: the disk is full"):
            with atomic_output(root / "x.hdf5") as tmp, h5py.File(tmp, "w") as h5:
                h5["a"] = np.zeros(100_000)
        import torch
        with pytest.raises(OutputError, match="x.pth: cannot write: the disk is full"):
            save_torch({"w": torch.zeros(200_000)}, root / "x.pth")
        assert [p for p in root.rglob("*") if p.is_file() and p.parent.name != "locks"] == []


FULL_CALIBRATION = """
import shutil, sys
from pathlib import Path
sys.path[:0] = [{repo!r}, {tests!r}]
import calibration_files
from cli import main_guard
from config import load_config
from test_calibration_files import calibration

cfg = load_config("tiny", [], {root!r})
free = shutil.disk_usage(cfg.root).free
(cfg.root / "filler").write_bytes(bytes(free - {left}))      # {left} bytes left
sys.exit(main_guard(lambda: calibration_files.write_calibration(cfg, 0.44, calibration(cfg, [])) and 0)())
"""


@pytest.mark.parametrize("left", [4096, 40960])
def test_a_disk_filling_up_while_the_calibration_is_written_is_one_line(left, tmp_path):
    """Written by HDF5 onto the full disk, the file failed in HDF5's destructors: six tracebacks,
    then a crash at exit (status 139) and a temporary left.  Built in memory, it is one line."""
    tests = Path(__file__).parent
    with tmpfs(tmp_path / "full", "size=8m") as root:
        script = FULL_CALIBRATION.format(repo=str(tests.parent), tests=str(tests), root=str(root), left=left)
        run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
        assert (run.returncode, run.stderr) == (2, f"error: {root}/calibration/calibration_sigma44.h5: cannot write: "
                                                "the disk is full; nothing was written (no half-written file left)\n")
        assert sorted(p.name for p in root.rglob("*") if p.is_file()) == ["filler"]


# --- item 8: up-to-date outputs are kept and said so ----------------------------------------------
def test_prediction_and_analysis_keep_up_to_date_outputs(tmp_path, capsys):
    cfg = load_config("tiny", [f"noise_file={NOISE}", "n_boot=20"], tmp_path)
    inputs = prediction.mock_inputs(cfg, "delta_tanh")
    write_random_audience(cfg, inputs.clean, inputs.samples.std(axis=0))
    args = ["--preset", "tiny", "--root", str(tmp_path), "--set", f"noise_file={NOISE}", "--set", "n_boot=20"]

    def predict(*extra):
        assert prediction.mock_main("delta_tanh", "predict", args + list(extra)) == 0
        return capsys.readouterr().out

    def analyze(*extra):
        assert analysis.main("analyze", "delta_tanh", args + list(extra)) == 0
        return capsys.readouterr().out

    files = [cfg.prediction_file("delta_tanh", e, s) for s in cfg["sigmas_gev"] for e in cfg["ensembles"]]
    assert predict().count("wrote ") == len(files)
    stamps = {p: p.stat().st_mtime_ns for p in files}
    again = predict()
    assert "wrote " not in again and again.count("up to date: ") == len(files)
    assert {p: p.stat().st_mtime_ns for p in files} == stamps
    assert predict("--force").count("wrote ") == len(files)

    # one changed checkpoint: only its ensemble and σ is redone; a missing file is made again
    import torch
    sigma = cfg["sigmas_gev"][0]
    changed = cfg.checkpoint(sigma, "Nref_b", 1)
    record = torch.load(changed, weights_only=True)
    record["state_dict"]["fc2.bias"] += 1.0
    save_torch(record, changed)
    cfg.prediction_file("delta_tanh", "Nmax", cfg["sigmas_gev"][1]).unlink()
    out = predict()
    assert out.count("wrote ") == 2 and out.count("up to date: ") == len(files) - 2
    assert f"wrote {cfg.prediction_file('delta_tanh', 'Nref_b', sigma)}" in out

    first = analyze()
    assert "wrote " in first and "up to date" not in first
    table = cfg.results_file("delta_tanh", sigma, "budget.csv")
    stamp = table.stat().st_mtime_ns
    second = analyze()
    assert "wrote " not in second and second.count("  up to date: ") == len(cfg["sigmas_gev"])
    assert table.stat().st_mtime_ns == stamp
    assert first.split("Summary")[1] == second.split("Summary")[1]     # the same summary is printed
    assert "wrote " in analyze("--force")
    predict("--force")                                # new prediction files: the analysis is redone
    assert "wrote " in analyze()


def test_a_root_with_spaces_and_non_ascii_letters(tmp_path, capsys):
    """Generation, prediction and analysis under a --root whose name has spaces, Greek and accented
    letters (as a user's home or project folder may), with a noise file given by such a path."""
    root = tmp_path / "ρ_σ données" / "run 1"
    root.mkdir(parents=True)
    noise = root / "bruit ÿ.h5"
    noise.write_bytes(Path(NOISE).read_bytes())
    cfg = load_config("tiny", [f"noise_file={noise}", "n_boot=20"], root)
    training_sets.generate_training_files(cfg, 32, workers=1, progress=False, log=lambda *a: None)
    assert cfg.training_file(32, 400).is_file()
    inputs = prediction.mock_inputs(cfg, "delta_tanh")
    write_random_audience(cfg, inputs.clean, inputs.samples.std(axis=0))
    args = ["--preset", "tiny", "--root", str(root), "--set", f"noise_file={noise}", "--set", "n_boot=20"]
    assert prediction.mock_main("delta_tanh", "predict", args) == 0
    assert analysis.main("analyze", "delta_tanh", args) == 0
    out = capsys.readouterr().out
    assert f"wrote {cfg.results_file('delta_tanh', cfg['sigmas_gev'][0], 'budget.csv')}" in out


# --- the local runner: tasks in their own process group, never outliving the runner --------------
CHILD = """
import os, signal, sys, time
marker = sys.argv[1]
def stop(signum, frame):
    with open(marker, "a") as fh:
        fh.write(f" {signal.Signals(signum).name}")
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
with open(marker, "w") as fh:
    fh.write(f"{os.getpid()} {os.getpgid(0)}")
time.sleep(60)
"""
RUNNER = """
import sys
sys.path.insert(0, {repo!r})
import io_utils, run_pipeline
from pathlib import Path
io_utils.exit_cleanly_on_sigterm()
markers = {markers!r}
if len(markers) == 1:
    run_pipeline.run_task([sys.executable, "-c", {child!r}, markers[0]], ".", None)
else:
    run_pipeline.run_side_by_side([(n, [sys.executable, "-c", {child!r}, m], Path(m + ".log"))
                                   for n, m in enumerate(markers)], ".", None, jobs=len(markers))
"""


@pytest.mark.parametrize("side_by_side", [False, True])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_a_task_is_stopped_with_its_runner(sig, side_by_side, tmp_path):
    """Every running task, alone or beside others (--jobs), is told to stop once when its runner is
    interrupted or killed."""
    if sig == signal.SIGKILL and not sys.platform.startswith("linux"):
        pytest.skip("the parent-death signal (prctl) exists on Linux only")
    markers = [tmp_path / f"task{n}.txt" for n in range(2 if side_by_side else 1)]
    # SIGINT at its default in the runner, as in an interactive shell (Ctrl-C): a runner started
    # from a non-interactive shell's background job inherits SIGINT ignored, and keeps ignoring it
    runner = subprocess.Popen([sys.executable, "-c", RUNNER.format(repo=str(REPO), child=CHILD,
                                                                   markers=list(map(str, markers)))],
                              cwd=tmp_path, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    for _ in range(600):
        if all(m.exists() and m.read_text() for m in markers):
            break
        time.sleep(0.05)
    started = [tuple(map(int, m.read_text().split()[:2])) for m in markers]
    for pid, group in started:
        assert group == pid != runner.pid                 # its own process group
    runner.send_signal(sig)
    runner.wait(timeout=30)
    for marker, (pid, group) in zip(markers, started, strict=True):
        for _ in range(200):
            if marker.read_text().endswith("SIGTERM"):
                break
            time.sleep(0.05)
        assert marker.read_text() == f"{pid} {group} SIGTERM"   # told to stop, once, and it did


SLEEPER = """
import signal, sys, time
marker, seconds, status = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
def stop(signum, frame):
    with open(marker, "a") as fh:
        fh.write(" SIGTERM")
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
with open(marker, "w") as fh:
    fh.write(f"{time.monotonic()}")
print("output of", marker)
time.sleep(seconds)
with open(marker, "a") as fh:
    fh.write(f" {time.monotonic()}")
sys.exit(status)
"""


def sleepers(tmp_path, plan: list[tuple[float, int]]) -> list[tuple[int, list[str], Path]]:
    """Tasks 1, 2, ... that sleep the given seconds, then exit with the given status."""
    return [(n, [sys.executable, "-c", SLEEPER, str(tmp_path / f"m{n}"), str(seconds), str(status)],
             tmp_path / "logs" / f"task{n}.log") for n, (seconds, status) in enumerate(plan, 1)]


def test_tasks_run_side_by_side_at_most_jobs_at_once(tmp_path, capsys):
    todo = sleepers(tmp_path, [(1.0, 0), (1.0, 0), (1.0, 0)])
    assert run_pipeline.run_side_by_side(todo, tmp_path, None, jobs=2) is None
    spans = [tuple(map(float, (tmp_path / f"m{n}").read_text().split())) for n in (1, 2, 3)]
    assert spans[1][0] < spans[0][1] and spans[0][0] < spans[1][1]     # the first two overlap
    assert spans[2][0] >= min(spans[0][1], spans[1][1])               # the third waits for one
    for n, _, log in todo:
        assert log.read_text() == f"output of {tmp_path / f'm{n}'}\n"   # each task's output in its log
    assert capsys.readouterr().out.count(" done in ") == 3


def test_a_failing_task_stops_the_others_and_is_named(tmp_path):
    todo = sleepers(tmp_path, [(60.0, 0), (0.2, 3), (0.1, 0)])
    t0 = time.monotonic()
    assert run_pipeline.run_side_by_side(todo, tmp_path, None, jobs=2) == (2, 3)
    assert time.monotonic() - t0 < 30
    assert (tmp_path / "m1").read_text().endswith(" SIGTERM")     # stopped, not waited for
    assert not (tmp_path / "m3").exists()                          # never started


# --- items 1 and 7: one process per training task; its stale temporaries removed under the lock --
def test_two_runs_of_one_training_task_exactly_one_trains(tmp_path):
    import torch

    from checkpoints import load_checkpoint
    cfg = load_config("tiny", [f"noise_file={NOISE}", "max_epochs=40", "patience=40"], tmp_path)
    training_sets.generate_training_files(cfg, 32, workers=1, progress=False, log=lambda *a: None)
    command = [sys.executable, str(REPO / "hpc_train_sigma.py"), "--task-id", "0-1", *cfg.options()]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    runs = [subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True) for _ in range(2)]
    results = [run.communicate(timeout=600) + (run.returncode,) for run in runs]
    assert sorted(status for _, _, status in results) == [0, 2], results
    out, err, _ = next(r for r in results if r[2] == 2)
    assert err.count("\n") == 1 and "is being run by another process (host " in err and ", PID " in err
    assert "epoch 1" not in out                               # it stopped before training anything
    for r in (0, 1):                                          # one run's files, consistent
        state = torch.load(cfg.state_path(0.44, "Nmax", r), weights_only=True)
        _, meta = load_checkpoint(cfg.checkpoint(0.44, "Nmax", r))
        history = cfg.history_path(0.44, "Nmax", r).read_text().splitlines()
        assert state["finished"] and len(history) == 1 + len(state["history"]) == 1 + state["epoch"]
        assert meta["epoch"] == state["best_epoch"] and meta["best_val_loss"] == state["best_val"]
    again = subprocess.run(command + ["--wait-lock"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert again.returncode == 0 and again.stdout.count("already finished") == 2


def test_a_task_removes_only_its_own_stale_temporaries(tmp_path):
    from training import train_replicas
    cfg = load_config("tiny", [f"noise_file={NOISE}", "max_epochs=1"], tmp_path)
    training_sets.generate_training_files(cfg, 32, workers=1, progress=False, log=lambda *a: None)
    directory = cfg.model_dir(0.44, "Nmax")
    directory.mkdir(parents=True)
    mine = [directory / ".replica_0_state.pth.99999.tmp", directory / ".replica_0_best.pth.12.tmp"]
    others = [directory / ".replica_1_state.pth.99999.tmp", directory / "notes.tmp"]
    for path in mine + others:
        path.write_bytes(b"half-written")
    messages = []
    train_replicas(cfg, "Nmax", 0.44, [0], device="cpu", log=messages.append)
    assert not any(p.exists() for p in mine) and all(p.exists() for p in others)
    assert any("removed 2 temporary file(s) of a killed run" in m for m in messages)
    stale = cfg.training_file(16, 400).with_name(".training_data_Nb16_Nrho400.hdf5.4242.tmp")
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"half-written")
    training_sets.generate_training_files(cfg, 16, workers=1, progress=False, log=messages.append)
    assert not stale.exists() and "removed 1 temporary file(s) of a killed generation" in " ".join(messages)


# --- issue 22 item 4: prediction and analysis hold a lock per input, and clean their temporaries ----
def test_prediction_and_analysis_lock_their_input_and_remove_their_stale_temporaries(tmp_path, capsys):
    import threading

    from io_utils import task_lock
    cfg = load_config("tiny", [f"noise_file={NOISE}", "n_boot=8"], tmp_path)
    inputs = prediction.mock_inputs(cfg, "delta_tanh")
    write_random_audience(cfg, inputs.clean, inputs.samples.std(axis=0))
    args = ["--preset", "tiny", "--root", str(tmp_path), "--set", f"noise_file={NOISE}", "--set", "n_boot=8"]
    sigma = cfg["sigmas_gev"][0]
    for stage, lock, output, run in (
            ("prediction", cfg.prediction_lock("delta_tanh"), cfg.prediction_file("delta_tanh", "Nmax", sigma),
             lambda *extra: prediction.mock_main("delta_tanh", "predict", args + list(extra))),
            ("analysis", cfg.analysis_lock("delta_tanh"), cfg.results_file("delta_tanh", sigma, "budget.hdf5"),
             lambda *extra: analysis.main("analyze", "delta_tanh", args + list(extra)))):
        with task_lock(lock, "a test"):                      # another process at work on this input
            assert run() == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"error: {lock}: the {stage} of delta_tanh is being run by "
                                                         "another process (host ")      # no "[Errno 11]"
        stale = output.with_name(f".{output.name}.4242.tmp")
        other = output.with_name(f".{output.name}.x.tmp.keep")
        stale.parent.mkdir(parents=True, exist_ok=True)
        stale.write_bytes(b"half-written")
        other.write_bytes(b"not ours")
        holder = contextlib.ExitStack()
        holder.enter_context(task_lock(lock, "a test"))
        threading.Timer(0.5, holder.close).start()          # the other process ends a moment later
        assert run("--wait-lock") == 0
        out = capsys.readouterr().out
        assert f"waiting for the {stage} of delta_tanh" in out
        assert f"removed 1 temporary file(s) of a killed {stage}: {stale.name}" in out
        assert not stale.exists() and other.exists() and output.is_file()


# --- issue 22 item 5: resampling in bounded memory -------------------------------------------------
BOUNDED = """
import re, resource, sys
import numpy as np
sys.path.insert(0, {repo!r})
import predict_on_user_data                     # the interpreter, torch and every module of a prediction
from correlator_files import resample
baseline = int(re.search(r"VmSize:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)) << 10
limit = baseline + (3 << 29)                     # 1.5 GiB of address space above the baseline
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
values = np.random.default_rng(0).standard_normal((2000, 32))
try:
    resample(values, "bootstrap", 10_000, np.random.default_rng(1), chunk_bytes=1 << 40)
    print("unchunked fits")
except MemoryError:
    print("unchunked MemoryError")               # 10^4 x 2000 x 32 values: 4.8 GiB at once
samples = resample(values, "bootstrap", 10_000, np.random.default_rng(1))
print("chunked", samples.shape, bool(np.isfinite(samples).all()))
"""


def test_a_big_bootstrap_resampling_runs_within_a_bounded_address_space():
    if not Path("/proc/self/status").exists():
        pytest.skip("the baseline is read from /proc (Linux)")
    run = subprocess.run([sys.executable, "-c", BOUNDED.format(repo=str(REPO))], capture_output=True,
                         text=True, timeout=120, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert run.returncode == 0, run.stderr
    assert run.stdout.split("\n")[:2] == ["unchunked MemoryError", "chunked (10000, 32) True"]


# --- item 11: checksums on the training files ----------------------------------------------------------
def test_a_corrupted_byte_in_a_training_file_is_detected_and_the_remedy_named(tiny_cfg):
    training_sets.generate_training_files(tiny_cfg, 32, workers=1, progress=False, log=lambda *a: None)
    path = tiny_cfg.training_file(32, 400)
    with h5py.File(path, "r") as h5:
        assert all(h5[k].fletcher32 for k in h5)
        offset = h5["standardized_noisy_correlators"].id.get_chunk_info(1).byte_offset
    data = bytearray(path.read_bytes())
    data[offset + 50] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"standardized_noisy_correlators': damaged.*delete .*Nrho400.hdf5 "
                                         r"and make it again with `python generate_full_dataset_sigma.py "
                                         r"--preset tiny --nb 32"):
        training_sets.load_training_data(tiny_cfg, "Nmax", 0.44)


# --- issue 22 item 6: a training file held open by another process is named so, never remade ---------
def test_a_training_file_open_for_writing_elsewhere_is_reported_and_kept(tiny_cfg, monkeypatch):
    from io_utils import TaskLocked
    monkeypatch.setenv("HDF5_USE_FILE_LOCKING", "TRUE")          # HDF5's default, whatever the caller set
    training_sets.generate_training_files(tiny_cfg, 32, workers=1, progress=False, log=lambda *a: None)
    path = tiny_cfg.training_file(32, 400)
    holder = subprocess.Popen([sys.executable, "-c", f"import h5py, sys, time; f = h5py.File({str(path)!r}, 'a'); "
                               "print('open', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "open\n"
        inode = path.stat().st_ino
        message = rf"{path}: open for writing by another process \(PID {holder.pid}: .*python.*\): HDF5 lets no one"
        with pytest.raises(TaskLocked, match=message):
            training_sets.load_training_data(tiny_cfg, "Nmax", 0.44)
        with pytest.raises(TaskLocked, match=message):
            training_sets.generate_training_files(tiny_cfg, 32, workers=1, progress=False, log=lambda *a: None)
        assert path.stat().st_ino == inode                  # not made again
    finally:
        holder.kill()
        holder.wait()


# --- item 2, issue 22 item 9: a lost best checkpoint is written again from the state, exactly -----------
@pytest.mark.parametrize("damage", ["delete", "truncate"])
def test_a_lost_best_checkpoint_is_rebuilt_exactly_from_the_state(damage, tmp_path):
    """Replica 1, trained in a group with replica 0 (retraining it alone would differ by round-off):
    its checkpoint comes back byte for byte, without training."""
    from training import train_replicas
    cfg = load_config("tiny", [f"noise_file={NOISE}", "max_epochs=2"], tmp_path)
    training_sets.generate_training_files(cfg, 32, workers=1, progress=False, log=lambda *a: None)
    assert train_replicas(cfg, "Nref_n", 0.44, [0, 1], device="cpu", log=lambda *a: None) == {0: "finished",
                                                                                             1: "finished"}
    best = cfg.checkpoint(0.44, "Nref_n", 1)
    original = best.read_bytes()
    if damage == "delete":
        best.unlink()
    else:
        best.write_bytes(original[:1000])
    messages = []
    assert train_replicas(cfg, "Nref_n", 0.44, [1], device="cpu", log=messages.append) == {1: "already finished"}
    assert any("written again from the saved state (the best network of epoch" in m for m in messages)
    assert not any("epoch 1 lr" in m for m in messages)            # nothing trained
    assert best.read_bytes() == original


def test_a_state_of_the_earlier_format_is_read_not_refused(tmp_path):
    """A finished replica whose state was saved before the state kept its best network (format
    spectral-train-state/1) is reported finished: neither retrained nor refused."""
    import torch

    from checkpoints import STATE_FORMAT
    from training import train_replicas
    cfg = load_config("tiny", [f"noise_file={NOISE}", "max_epochs=2"], tmp_path)
    training_sets.generate_training_files(cfg, 32, workers=1, progress=False, log=lambda *a: None)
    assert train_replicas(cfg, "Nref_n", 0.44, [0], device="cpu", log=lambda *a: None) == {0: "finished"}
    state = cfg.state_path(0.44, "Nref_n", 0)
    record = torch.load(state, weights_only=True)
    assert record.pop("format") == STATE_FORMAT and record.pop("best") is not None
    torch.save({"format": "spectral-train-state/1", **record}, state)
    best = cfg.checkpoint(0.44, "Nref_n", 0).read_bytes()
    messages = []
    assert train_replicas(cfg, "Nref_n", 0.44, [0], device="cpu", log=messages.append) == {0: "already finished"}
    assert not any("epoch 1 lr" in m for m in messages)
    assert cfg.checkpoint(0.44, "Nref_n", 0).read_bytes() == best
    torch.save({"format": "spectral-train-state/0", **record}, state)
    with pytest.raises(InputError, match="format 'spectral-train-state/2'; delete it"):
        train_replicas(cfg, "Nref_n", 0.44, [0], device="cpu", log=lambda *a: None)


# --- issue 22 item 3: a group's states are saved as one unit ---------------------------------------
INTERRUPT = """
import errno, os, signal, sys
from pathlib import Path
sys.path.insert(0, {repo!r})
import hpc_train_sigma, training
op, k, action = [0], {k}, {action!r}
save_states = training.save_states

def at_epoch_2(states):       # the group's second save: epoch 2 ended
    op[0] = 0 if next(iter(states.values())).epoch == 2 else -10**9
    save_states(states)

def counted(write):           # the files of that save, then the checkpoints and histories
    def wrapper(*args, **kwargs):
        op[0] += 1
        if op[0] == k and action == "full disk":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        out = write(*args, **kwargs)
        if op[0] == k:
            os.kill(os.getpid(), signal.SIGKILL)
        return out
    return wrapper

training.save_states = at_epoch_2
Path.write_bytes, Path.write_text, os.replace = map(counted, (Path.write_bytes, Path.write_text, os.replace))
sys.exit(hpc_train_sigma.main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_a_kill_or_full_disk_while_a_group_saves_its_states_resumes_bitwise(tmp_path, monkeypatch):
    """Replicas 0 and 1 trained together for 3 epochs; their save after epoch 2 is cut after k of
    its file operations (2 states written, the commit record, 2 renames: k = 1, 3, 4), by SIGKILL
    or a full disk; the same command then finishes, equal bit for bit to an uninterrupted run."""
    import torch

    import hpc_train_sigma
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    threads = torch.get_num_threads()
    reference = load_config("tiny", [f"noise_file={NOISE}", "max_epochs=3", "patience=3"], tmp_path / "whole")
    training_sets.generate_training_files(reference, 32, workers=1, progress=False, log=lambda *a: None)
    command = ["--ensemble", "Nref_n", "--replica", "0-1", "--sigma", "0.44", "--device", "cpu"]

    def files(cfg):     # all but the provenance, which names the root and the time
        outputs = []
        for r in (0, 1):
            state = torch.load(cfg.state_path(0.44, "Nref_n", r), weights_only=True)
            best = torch.load(cfg.checkpoint(0.44, "Nref_n", r), weights_only=True)
            assert equal(best, state.pop("best"))
            outputs.append((state, best["state_dict"], best["epoch"], cfg.history_path(0.44, "Nref_n", r).read_text()))
        return outputs

    def equal(a, b):
        if isinstance(a, dict):
            return a.keys() == b.keys() and all(equal(a[key], b[key]) for key in a)
        if isinstance(a, (list, tuple)):
            return len(a) == len(b) and all(map(equal, a, b))
        return torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b

    try:
        assert hpc_train_sigma.main([*command, *reference.options()]) == 0
        whole = files(reference)
        for k, action in [(1, "kill"), (3, "kill"), (4, "kill"), (1, "full disk"), (3, "full disk")]:
            root = tmp_path / f"{action}{k}"
            root.mkdir()
            (root / "training_datasets_T32").symlink_to(tmp_path / "whole" / "training_datasets_T32")
            cfg = load_config("tiny", reference.overrides, root)
            cut = subprocess.run([sys.executable, "-c", INTERRUPT.format(repo=str(REPO), k=k, action=action),
                                  *command, *cfg.options()], cwd=root, capture_output=True, text=True, timeout=300)
            if action == "kill":
                assert cut.returncode == -signal.SIGKILL, cut.stderr
            else:
                assert cut.returncode == 2 and cut.stderr.count("\n") == 1, cut.stderr
                written = "replica_0_state.pth" if k == 1 else ".replica_0_state.pth.commit"
                assert f"Nref_n/{written}: cannot write: the disk is full; nothing was written" in cut.stderr
                assert not list(cfg.model_dir(0.44, "Nref_n").glob(".*"))      # nothing pending
            epochs = {torch.load(cfg.state_path(0.44, "Nref_n", r), weights_only=True)["epoch"] for r in (0, 1)}
            assert epochs == ({1, 2} if k == 4 else {1})     # k = 4: one renamed, the record completes it
            assert hpc_train_sigma.main([*command, *cfg.options()]) == 0, (k, action)
            assert equal(files(cfg), whole), (k, action)
    finally:
        torch.set_num_threads(threads)


# --- item 5: training takes what its training file holds ------------------------------------------------
@pytest.mark.parametrize("override,key", [("n_noise=7 noise=stored", "n_noise"), ("seed=5", "seed"),
                                          ("noise_file=other.h5", "noise_sha256"),
                                          ("a_inv_gev=2.0", "a_inv_gev")])     # issue 22 item 8
def test_training_refuses_settings_that_disagree_with_its_training_file(override, key, tiny_cfg):
    import shutil
    training_sets.generate_training_files(tiny_cfg, 32, workers=1, progress=False, log=lambda *a: None)
    other = tiny_cfg.root / "other.h5"
    shutil.copy(NOISE, other)
    with h5py.File(other, "a") as h5:
        h5.attrs["source"] = "a copy with other bytes"
    cfg = load_config("tiny", tiny_cfg.overrides + override.split(), tiny_cfg.root)
    with pytest.raises(InputError, match=f"key '{key}': the file was generated with"):
        training_sets.load_training_data(cfg, "Nmax", 0.44)
