"""The Slurm submit scripts and the local runner (issue 5), without a Slurm: `sbatch` and
`scontrol` are replaced by recorders on PATH. The array sizes the scripts request must be the
preset's (tasks.generation_tasks / training_groups / training_tasks), so they cannot drift apart."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import run_pipeline
from calibration import result_centres
from config import ConfigError, load_config
from result_files import budget_columns
from tasks import generation_tasks, training_groups, training_tasks

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "slurm_scripts"
SUBMIT_SCRIPTS = ["submit_generation_sigma.sh", "submit_training_sigma.sh", "submit_calibration_sigma.sh",
                  "submit_prediction_O3.sh", "submit_prediction_delta.sh", "submit_all.sh"]

# Records each call's arguments (one per line, a blank line after each call) and prints a job id.
RECORDER = """#!/bin/bash
n=$(( $(grep -c '^$' "{log}" 2>/dev/null || true) + 101 ))
printf '%s\\n' "$@" >> "{log}"; echo >> "{log}"
echo "$n"
"""


@pytest.fixture
def fake_slurm(tmp_path):
    """PATH with recording `sbatch` and `scontrol`; returns (env, read_calls(name))."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("sbatch", "scontrol"):
        (bin_dir / name).write_text(RECORDER.format(log=tmp_path / f"{name}.log"))
        (bin_dir / name).chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPECTRAL_", "SLURM_"))}
    env.update(PATH=f"{bin_dir}:{env['PATH']}", SPECTRAL_PYTHON=sys.executable,
               SPECTRAL_ROOT=str(tmp_path / "root"))

    def calls(name):
        log = tmp_path / f"{name}.log"
        if not log.exists():
            return []
        return [block.split("\n") for block in log.read_text().split("\n\n") if block.strip()]
    return env, calls


def submit(script, env, *args):
    result = subprocess.run(["bash", str(SCRIPTS / script), *args], env=env, text=True,
                            capture_output=True, cwd=REPO, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def option(call, name):
    values = [a.split("=", 1)[1] for a in call if a.startswith(f"--{name}=")]
    return values[-1] if values else None


def array_size(call):
    lo, hi = option(call, "array").split("-")
    assert lo == "0"
    return int(hi) + 1


@pytest.mark.parametrize("script", SUBMIT_SCRIPTS + ["common.sh", "cluster.env"])
def test_bash_syntax(script):
    result = subprocess.run(["bash", "-n", str(SCRIPTS / script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("script", [".ci/run", ".ci/slurm_cluster.sh", ".ci/ci_slurm_pipeline.sh"])
def test_ci_bash_syntax(script):
    result = subprocess.run(["bash", "-n", str(REPO / script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("preset,overrides", [("tiny", ""), ("demo", ""), ("reference", ""),
                                              ("demo", "n_replicas=4 nb_list=[16,64,128]"),
                                              ("demo_prior", ""), ("reference", "prior_systematic=true"),
                                              ("tiny", "prior_systematic=true n_replicas=3")])
def test_array_sizes_match_preset(fake_slurm, preset, overrides):
    env, calls = fake_slurm
    env.update(SPECTRAL_PRESET=preset, SPECTRAL_OVERRIDES=overrides)
    cfg = load_config(preset, overrides.split())
    submit("submit_generation_sigma.sh", env)
    submit("submit_training_sigma.sh", env)
    submit("submit_training_sigma.sh", {**env, "SPECTRAL_TRAINING_LAYOUT": "replica"})
    generation, training_group, training_replica = calls("sbatch")
    assert array_size(generation) == len(generation_tasks(cfg))
    assert array_size(training_group) == len(training_groups(cfg))
    assert array_size(training_replica) == len(training_tasks(cfg))


def test_group_range_is_the_groups_task_ids():
    cfg = load_config("demo")
    for g, (_, _, ids) in enumerate(training_groups(cfg)):
        out = subprocess.run([sys.executable, str(REPO / "config.py"), "--preset", "demo",
                              "group-range", str(g)], capture_output=True, text=True, check=True)
        assert out.stdout.strip() == f"{ids[0]}-{ids[-1]}"


def test_submit_all_chains_with_afterok_and_site_settings(fake_slurm):
    env, calls = fake_slurm
    env.update(SPECTRAL_PRESET="tiny", SPECTRAL_ACCOUNT="lattice42", SPECTRAL_GPU_PARTITION="a100",
               SPECTRAL_TRAINING_GPUS="2", SPECTRAL_TRAINING_TIME="02:00:00",
               SPECTRAL_SETUP="echo a module system that talks on stdout")
    out = submit("submit_all.sh", env)
    assert out.split() == ["generation", "101", "training", "102", "calibration", "103",
                           "prediction_O3", "104", "prediction_delta", "105"]
    generation, training, calibration, o3, delta = calls("sbatch")
    assert option(o3, "array") is None and option(delta, "array") is None   # one process each
    assert option(calibration, "array") is None
    assert option(generation, "dependency") is None
    assert option(training, "dependency") == "afterok:101"
    assert option(calibration, "dependency") == "afterok:102"             # after training,
    assert option(o3, "dependency") == option(delta, "dependency") == "afterok:103"   # before prediction
    assert all(option(c, "account") == "lattice42" for c in (generation, training, calibration, o3, delta))
    assert option(training, "partition") == "a100" and option(training, "gres") == "gpu:2"
    assert option(training, "time") == "02:00:00" and option(training, "signal").startswith("B:USR1@")
    assert "--requeue" in training
    assert option(generation, "partition") == option(o3, "partition") == option(calibration, "partition") == "cpu"
    for call in (generation, training, calibration, o3, delta):   # logs in slurm_logs/, which must exist
        assert Path(option(call, "output")).parent == Path(env["SPECTRAL_ROOT"]) / "slurm_logs"
        assert call[-1] == "run"
    assert (Path(env["SPECTRAL_ROOT"]) / "slurm_logs").is_dir()


def test_without_interval_networks_the_calibration_job_still_runs(fake_slurm):
    """The audience centre's calibration needs no interval networks: the chain keeps its calibration job."""
    env, calls = fake_slurm
    env.update(SPECTRAL_PRESET="tiny", SPECTRAL_OVERRIDES="interval_networks=false calibrated_centre=audience")
    out = submit("submit_all.sh", env)
    assert out.split() == ["generation", "101", "training", "102", "calibration", "103", "prediction_O3", "104",
                           "prediction_delta", "105"]
    assert option(calls("sbatch")[2], "dependency") == "afterok:102"
    assert all(option(c, "dependency") == "afterok:103" for c in calls("sbatch")[3:])


def test_calibration_job_runs_calibrate_sigma(fake_slurm):
    env, _ = fake_slurm
    fake_python = Path(env["SPECTRAL_ROOT"]).parent / "python_recorder"
    fake_python.write_text("#!/bin/bash\necho \"$@\" >> \"$(dirname \"$0\")/stages.log\"\n")
    fake_python.chmod(0o755)
    result = subprocess.run(["bash", str(SCRIPTS / "submit_calibration_sigma.sh"), "run"], text=True,
                            env={**env, "SPECTRAL_PYTHON": str(fake_python), "SPECTRAL_PRESET": "tiny"},
                            capture_output=True, cwd=REPO, timeout=60)
    assert result.returncode == 0, result.stderr
    called = (fake_python.parent / "stages.log").read_text().split()
    assert Path(called[0]).name == "calibrate_sigma.py" and called[1:3] == ["--preset", "tiny"]


def test_missing_noise_file_stops_before_submitting(fake_slurm):
    env, calls = fake_slurm
    env.update(SPECTRAL_PRESET="tiny", SPECTRAL_OVERRIDES="noise_file=data/nowhere.h5")
    result = subprocess.run(["bash", str(SCRIPTS / "submit_all.sh")], env=env, text=True,
                            capture_output=True, cwd=REPO, timeout=60)
    assert result.returncode != 0
    assert "data/nowhere.h5" in result.stderr and "noise_file" in result.stderr
    assert calls("sbatch") == []


# A stand-in worker: records the signal it gets, "saves its state" and exits 3.
STUB_WORKER = """
import signal, sys, time, pathlib
out = pathlib.Path(sys.argv[1])
def stop(signum, frame):
    out.write_text(f"{signal.Signals(signum).name} " + " ".join(sys.argv[2:]))
    sys.exit(3)
signal.signal(signal.SIGUSR1, stop)
signal.signal(signal.SIGTERM, stop)
out.write_text("started")
time.sleep(30)
"""


@pytest.mark.parametrize("sig,requeued", [(signal.SIGUSR1, True), (signal.SIGTERM, False)])
def test_training_job_forwards_signal_and_requeues_on_warning(fake_slurm, tmp_path, sig, requeued):
    """The job body passes the time-limit warning (USR1) to the worker, then requeues itself;
    a SIGTERM (scancel) is passed on but not requeued."""
    env, calls = fake_slurm
    repo = tmp_path / "repo"   # the repository with a stand-in worker
    (repo / "slurm_scripts").mkdir(parents=True)
    for f in ("common.sh", "cluster.env", "submit_training_sigma.sh"):
        (repo / "slurm_scripts" / f).write_text((SCRIPTS / f).read_text())
    for f in ("config.py", "cli.py", "io_utils.py", "paths.py", "pytorch_models_t32.py", "roles.py",
              "settings.py", "sigma_model_utils.py", "tasks.py", "version.py"):   # config.py and its imports
        (repo / f).write_text((REPO / f).read_text())
    marker = tmp_path / "worker.txt"
    (repo / "hpc_train_sigma.py").write_text(
        f"import sys; sys.argv.insert(1, {str(marker)!r})\n" + STUB_WORKER)
    env.update(SPECTRAL_REPO=str(repo), SPECTRAL_PRESET="demo", SLURM_ARRAY_TASK_ID="2",
               SLURM_JOB_ID="777")
    job = subprocess.Popen(["bash", str(repo / "slurm_scripts" / "submit_training_sigma.sh"), "run"],
                           env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for _ in range(200):
        if marker.exists():
            break
        time.sleep(0.05)
    job.send_signal(sig)
    _, stderr = job.communicate(timeout=30)
    assert marker.read_text().startswith(sig.name), stderr
    cfg = load_config("demo")
    ids = training_groups(cfg)[2][2]
    assert marker.read_text().endswith(f"--task-id {ids[0]}-{ids[-1]}")
    if requeued:
        assert job.returncode == 0, stderr
        assert calls("scontrol") == [["requeue", "777"]]
    else:
        assert job.returncode == 3, stderr
        assert calls("scontrol") == []


def test_local_runner_runs_the_slurm_tasks_in_order(tmp_path):
    """run_pipeline.py: one process per array index of each stage, the calibration one per σ, then
    prediction + analysis."""
    cfg = load_config("tiny", [], tmp_path)
    tasks = run_pipeline.tasks(cfg)
    stages = [stage for stage, _ in tasks]
    n_gen, n_groups = len(generation_tasks(cfg)), len(training_groups(cfg))
    assert stages == (["generation"] * n_gen + ["training"] * n_groups + ["calibration"] * len(cfg["sigmas_gev"])
                      + ["prediction O3", "analysis O3", "prediction delta_tanh", "analysis delta_tanh"])
    calibrations = [cmd for stage, cmd in tasks if stage == "calibration"]
    assert [float(cmd[cmd.index("--sigma") + 1]) for cmd in calibrations] == cfg["sigmas_gev"]
    plain = load_config("tiny", ["interval_networks=false", "calibrated_centre=audience"], tmp_path)
    assert [stage for stage, _ in run_pipeline.tasks(plain)].count("calibration") == len(cfg["sigmas_gev"])
    assert run_pipeline.expected_outputs(plain)["calibration"] == [plain.calibration_file(s) for s in cfg["sigmas_gev"]]
    task_ids = [cmd[cmd.index("--task-id") + 1] for _, cmd in tasks if "--task-id" in cmd]
    assert task_ids == ([str(i) for i in range(n_gen)]
                        + [f"{ids[0]}-{ids[-1]}" for _, _, ids in training_groups(cfg)])
    for _, cmd in tasks:
        assert cmd[cmd.index("--preset") + 1] == "tiny" and cmd[cmd.index("--root") + 1] == str(tmp_path)


def test_check_reports_missing_outputs(tmp_path, capsys):
    assert run_pipeline.main(["--check", "--preset", "tiny", "--root", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "MISSING" in out and "training_data_Nb16_Nrho200.hdf5" in out
    calibration = next(line for line in out.splitlines() if line.strip().startswith("calibration:"))
    assert "0/2 files" in calibration and "calibration_sigma44.h5" in calibration


def test_budget_table_check(tmp_path):
    cfg = load_config("tiny", [], tmp_path)
    columns = budget_columns("calibrated", "mock", centres=result_centres(cfg))
    rows = [[0.1 * (k + 1)] * len(columns) for k in range(cfg["n_energies"])]
    good = tmp_path / "good.csv"
    good.write_text(",".join(columns) + "\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")
    assert run_pipeline.budget_table_problem(cfg, good) is None
    rows[3][2] = float("nan")
    bad = tmp_path / "nan.csv"
    bad.write_text(",".join(columns) + "\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")
    assert "finite" in run_pipeline.budget_table_problem(cfg, bad)
    renamed = tmp_path / "renamed.csv"
    renamed.write_text(good.read_text().replace("sys_b", "sysb", 1))
    assert "columns" in run_pipeline.budget_table_problem(cfg, renamed)


def test_every_mock_of_the_table_has_its_scripts_and_job(fake_slurm):
    """mocks.MOCK_TABLE is the one list: each row's scripts exist, its submit script is a caller of
    mock_job for that mock, and the job body runs exactly the row's two stage scripts."""
    from mocks import MOCK_TABLE
    env, _ = fake_slurm
    for entry in MOCK_TABLE:
        assert (REPO / entry.predict_script).is_file() and (REPO / entry.analyze_script).is_file()
        assert f"mock_job {entry.name} " in (SCRIPTS / entry.submit_script).read_text()
        fake_python = Path(env["SPECTRAL_ROOT"]).parent / "python_recorder"
        fake_python.write_text(f"#!/bin/bash\nif [[ \"$1\" == *mocks.py ]]; then exec {sys.executable} \"$@\"; fi\n"
                               "echo \"$1\" >> \"$(dirname \"$0\")/stages.log\"\n")
        fake_python.chmod(0o755)
        log = fake_python.parent / "stages.log"
        log.unlink(missing_ok=True)
        result = subprocess.run(["bash", str(SCRIPTS / entry.submit_script), "run"], text=True,
                                env={**env, "SPECTRAL_PYTHON": str(fake_python)}, capture_output=True,
                                cwd=REPO, timeout=60)
        assert result.returncode == 0, result.stderr
        assert [Path(p).name for p in log.read_text().split()] == [entry.predict_script, entry.analyze_script]


def test_prior_systematic_adds_one_generation_task_and_one_group_per_sigma():
    """method §8 extension: Nref_prior is Nmax's network, N_b and N_rho on the second space; it adds
    one generation task (the prior space at Nmax's N_b) and one training group per σ."""
    for preset, overrides in (("demo", ["prior_systematic=true"]), ("demo_prior", []),
                              ("reference", ["prior_systematic=true", "ensembles.Nmax.nrho=200000"])):
        base = load_config(preset, [o for o in overrides if not o.startswith("prior")]
                           + (["prior_systematic=false"] if preset == "demo_prior" else []))
        cfg = load_config(preset, overrides)
        assert "Nref_prior" not in base["ensembles"]
        nmax = cfg["ensembles"]["Nmax"]
        assert cfg["ensembles"]["Nref_prior"] == dict(nmax, space="prior")
        assert sorted(generation_tasks(cfg)) == sorted(generation_tasks(base) + [("prior", nmax["nb"])])
        assert len(training_groups(cfg)) == len(training_groups(base)) + len(cfg["sigmas_gev"])
        assert ("Nref_prior", cfg["sigmas_gev"][-1]) in [(e, s) for e, s, _ in training_groups(cfg)]
        prior_file = cfg.training_file(nmax["nb"], nmax["nrho"], "prior")
        assert prior_file != cfg.training_file(nmax["nb"], nmax["nrho"])
        assert prior_file in run_pipeline.expected_outputs(cfg)["generation"]
        tasks = run_pipeline.tasks(cfg)
        assert [stage for stage, _ in tasks].count("generation") == len(generation_tasks(cfg))


def test_prior_ensemble_cannot_be_listed_by_hand():
    with pytest.raises(ConfigError, match="prior_systematic=true"):
        load_config("tiny", ['ensembles={"Nmax": {"arch": "arcL", "nb": 32, "nrho": 400}, '
                             '"Nref_prior": {"arch": "arcL", "nb": 32, "nrho": 400}}'])
    with pytest.raises(ConfigError, match="prior_space"):
        load_config("tiny", ["prior_systematic=true", "prior_space.x_scale=0"])
    with pytest.raises(ConfigError, match="true or false"):
        load_config("tiny", ["prior_systematic=yes"])
