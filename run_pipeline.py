"""Run the whole pipeline here, without Slurm, then the analysis (method §10).

The same tasks as slurm_scripts/submit_all.sh, in the same order, each Slurm array index in turn,
except that the training tasks (one per (ensemble, σ) group, independent like the Slurm array's
jobs) and the calibration's (one per σ here, one job under Slurm) run side by side, --jobs at a
time (default: the usable cores), one torch thread each, their output in pipeline_logs/ under
--root:

    python run_pipeline.py                      # the `demo` preset: minutes on a laptop
    python run_pipeline.py --preset tiny --root /tmp/try
    python run_pipeline.py --check --preset tiny --root DIR   # only check every stage's outputs
    python run_pipeline.py --jobs 1             # one task at a time, all output on the terminal

Stages: generation (one task per N_b, and one for the prior space with the prior systematic:
tasks.generation_tasks) -> training (one task per
(ensemble, σ) group of replicas, then with interval_networks one per σ for the interval networks:
tasks.training_groups) -> the calibration (calibrate_sigma.py, per σ) ->
for each mock: prediction, then its analysis. Each task is a separate process with the
pipeline's --preset/--set/--root, exactly as a Slurm job runs it. Finished work is kept by the
stages themselves (a complete training file or a finished replica is not redone), so a rerun after
an interruption continues. The run stops at the first failing task and names it (with the end of
its log when it ran beside others, whose training is stopped and saved). At the end it prints
where the plots and result tables are and the analysis summaries (level-1 coverage, mean |pull|
and R_bv per mock and σ). Each task gets one torch thread unless OMP_NUM_THREADS is set (see
task_environment).

Each task runs in its own process group (``start_task``).  Interrupted (Ctrl-C, SIGTERM) the runner
sends SIGTERM to every running task's group -- training saves its state, generation removes its temporary
files -- waits up to STOP_GRACE_S seconds, then kills what is left.  On Linux a task also gets
SIGTERM when the runner itself dies, even by SIGKILL (prctl PR_SET_PDEATHSIG), so no task
outlives it; and the training lock keeps any survivor from racing a rerun.
"""
from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from calibration import GUARANTEES
from cli import main_guard
from config import Config, add_common_args, config_from_args
from io_utils import exit_cleanly_on_sigterm
from mocks import MOCK_TABLE, MOCKS
from result_files import budget_table_problem
from settings import ConfigError
from tasks import generated_nrhos, generation_tasks, predicted_runs, training_groups, training_tasks

REPO = Path(__file__).resolve().parent


def tasks(cfg: Config) -> list[tuple[str, list[str]]]:
    """(stage, command) in the order of the Slurm chain, one entry per array index."""
    python, options = [sys.executable], cfg.options()
    out = [("generation", python + [str(REPO / "generate_full_dataset_sigma.py"), *options,
                                     "--task-id", str(i)])
           for i in range(len(generation_tasks(cfg)))]
    for _ensemble, _sigma, ids in training_groups(cfg):
        out.append(("training", python + [str(REPO / "hpc_train_sigma.py"), *options,
                                          "--task-id", f"{ids[0]}-{ids[-1]}"]))
    # the calibrated result's factors, one task per σ (calibrate_sigma.py)
    out += [("calibration", python + [str(REPO / "calibrate_sigma.py"), *options, "--sigma", str(s)])
            for s in cfg["sigmas_gev"]]
    for mock in MOCK_TABLE:                 # the validation mocks (method §9), mocks.py's table
        out.append((f"prediction {mock.name}", python + [str(REPO / mock.predict_script), *options]))
        out.append((f"analysis {mock.name}", python + [str(REPO / mock.analyze_script), *options]))
    return out


def expected_outputs(cfg: Config) -> dict[str, list[Path]]:
    """Every stage's output files (method §10), by stage."""
    sigmas = cfg["sigmas_gev"]
    out = {"generation": [cfg.training_file(nb, nrho, space) for space, nb in generation_tasks(cfg)
                          for nrho in generated_nrhos(cfg, space)]}
    runs = training_tasks(cfg)
    out["training"] = ([cfg.checkpoint(s, ens, r) for ens, r, s in runs]
                       + [cfg.history_path(s, ens, r) for ens, r, s in runs])
    out["calibration"] = [cfg.calibration_file(s) for s in sigmas]
    for mock in MOCKS:
        out[f"prediction {mock}"] = [cfg.prediction_file(mock, ens, s)
                                     for ens in predicted_runs(cfg) for s in sigmas]
        out[f"analysis {mock}"] = [cfg.results_file(mock, s, suffix) for s in sigmas
                                   for suffix in ("budget.csv", "budget.hdf5")]
    return out


def missing_outputs(cfg: Config, stage: str) -> list[str]:
    """The outputs of a stage that are missing or unusable (empty when it is complete)."""
    missing = [str(p) for p in expected_outputs(cfg)[stage] if not p.is_file()]
    if stage.startswith("analysis") and not missing:
        mock = stage.split()[1]
        for s in cfg["sigmas_gev"]:
            table = cfg.results_file(mock, s, "budget.csv")
            problem = budget_table_problem(cfg, table)
            if problem:
                missing.append(f"{table} ({problem})")
            if not list(table.parent.glob(f"{mock}_sigma{s}_*.png")):
                missing.append(str(cfg.results_file(mock, s, "*.png")))
    return missing


def check(cfg: Config) -> int:
    """Report every stage's outputs; 1 if any is missing."""
    status = 0
    for stage, paths in expected_outputs(cfg).items():
        missing = missing_outputs(cfg, stage)
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        print(f"{stage:>22}: {len(paths) - len(set(missing) & set(map(str, paths)))}/{len(paths)} files"
              + (f"; MISSING: {shown}" if missing else ""))
        status |= bool(missing)
    if not status:
        print("all outputs present")
    return status


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the system has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def task_environment() -> dict[str, str]:
    """The tasks' environment: one torch/BLAS thread each unless OMP_NUM_THREADS is set.

    Batch-32 training gains little from a second thread, and when the cores are busy with
    anything else it loses a lot (measured on 2 shared cores: 2 epochs of a demo group in 27-29 s
    with 1 thread, 83-230 s with 2).
    """
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


STOP_GRACE_S = 60        # how long an interrupted task may take to save its state and exit
PR_SET_PDEATHSIG = 1     # linux/prctl.h


def _task_setup(runner_pid: int):
    """What a task does between fork and exec: ask the kernel for SIGTERM when the runner dies
    (Linux), and stop at once if it already has."""
    def setup():
        if sys.platform.startswith("linux"):
            ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != runner_pid:
            os.kill(os.getpid(), signal.SIGTERM)
    return setup


def stop_tasks(procs: list[subprocess.Popen]) -> None:
    """SIGTERM to every task's process group, SIGKILL to whatever is left after STOP_GRACE_S."""
    for sig, grace in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, None)):
        alive = [p for p in procs if p.poll() is None]
        for proc in alive:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
        deadline = time.monotonic() + (grace or 0)
        for proc in alive:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.0, deadline - time.monotonic()) if grace else None)
        if all(p.poll() is not None for p in procs):
            break


def start_task(command: list[str], cwd, env, stdout=None) -> subprocess.Popen:
    """One task in its own process group, stopped with the runner (``_task_setup``)."""
    return subprocess.Popen(command, cwd=cwd, env=env, stdout=stdout,
                            stderr=subprocess.STDOUT if stdout not in (None, subprocess.PIPE) else None,
                            text=True, start_new_session=True, preexec_fn=_task_setup(os.getpid()))


def run_task(command: list[str], cwd, env, capture: bool = False) -> tuple[int, str | None]:
    """Run one task, its output on the terminal (or captured); (exit status, its stdout if captured).
    An interruption of the runner (KeyboardInterrupt, SystemExit from SIGTERM) stops the task first."""
    proc = start_task(command, cwd, env, subprocess.PIPE if capture else None)
    try:
        out, _ = proc.communicate()
    except BaseException:
        stop_tasks([proc])
        raise
    return proc.returncode, out


def run_side_by_side(todo: list[tuple[int, list[str], Path]], cwd, env, jobs: int,
                     labels: dict[int, str] | None = None) -> tuple[int, int] | None:
    """Run the (number, command, log) tasks of one stage, at most ``jobs`` at once, each writing its
    output to its log; None if all succeed, else (number, status) of the first that fails, the
    others stopped (training saves its state, so a rerun continues). An interruption of the runner
    stops them all."""
    waiting, running, done, labels = list(todo), {}, 0, labels or {}
    try:
        while waiting or running:
            while waiting and len(running) < jobs:
                number, command, log = waiting.pop(0)
                log.parent.mkdir(parents=True, exist_ok=True)
                with open(log, "w") as out:
                    running[number] = (start_task(command, cwd, env, out), time.monotonic())
                print(f"  task {number} started: {labels.get(number, '')} (output: {log})", flush=True)
            time.sleep(0.2)
            for number, (proc, t0) in list(running.items()):
                if proc.poll() is None:
                    continue
                del running[number]
                if proc.returncode != 0:
                    stop_tasks([p for p, _ in running.values()])
                    return number, proc.returncode
                done += 1
                print(f"  task {number} done in {time.monotonic() - t0:.0f} s [{done}/{len(todo)}]", flush=True)
    except BaseException:
        stop_tasks([p for p, _ in running.values()])
        raise
    return None


def tail(path: Path, lines: int = 20) -> str:
    """The last lines of a task's log (progress bars' carriage returns resolved to their last state)."""
    text = path.read_text(errors="replace").splitlines()
    return "\n".join("    " + line.split("\r")[-1] for line in text[-lines:])


def waves(todo: list[tuple[str, list[str]]]) -> list[tuple[str, list[tuple[int, list[str]]]]]:
    """The tasks grouped by stage, in order, each with its number (1-based): the tasks of one stage
    are independent (one Slurm array), so they may run side by side."""
    out = []
    for number, (stage, command) in enumerate(todo, 1):
        if out and out[-1][0] == stage:
            out[-1][1].append((number, command))
        else:
            out.append((stage, [(number, command)]))
    return out


# the stages whose tasks run side by side (--jobs), with what each of their tasks does
SIDE_BY_SIDE = {
    "training": lambda cfg: [f"{ensemble}, σ = {sigma} GeV" for ensemble, sigma, _ in training_groups(cfg)],
    "calibration": lambda cfg: [f"σ = {sigma} GeV" for sigma in cfg["sigmas_gev"]],
}


def run(cfg: Config, jobs: int = 1) -> int:
    todo = tasks(cfg)
    env = task_environment()
    print(f"{len(todo)} tasks; torch threads per task: OMP_NUM_THREADS={env['OMP_NUM_THREADS']}; "
          f"up to {jobs} training or calibration task(s) at once")
    started, summaries, stage_times = time.monotonic(), [], {}
    for stage, wave in waves(todo):
        t0 = time.monotonic()
        # generation parallelises itself over the cores (training_sets.py); training (one task per
        # (ensemble, σ) group) and calibration (one per σ) run side by side, one torch thread each
        side_by_side = jobs > 1 and len(wave) > 1 and stage in SIDE_BY_SIDE
        if side_by_side:
            print(f"\n=== [{wave[0][0]}-{wave[-1][0]}/{len(todo)}] {stage}: {len(wave)} tasks, up to {jobs} at once",
                  flush=True)
            labels = dict(zip([n for n, _ in wave], SIDE_BY_SIDE[stage](cfg), strict=True))
            for number, command in wave:
                print(f"  task {number}: {' '.join(command[1:])}")
            failed = run_side_by_side([(n, c, cfg.task_log(n, stage)) for n, c in wave], cfg.root, env, jobs, labels)
            if failed:
                number, returncode = failed
                log = cfg.task_log(number, stage)
                print(f"\nFAILED: {stage} task {number} exited with status {returncode}: "
                      f"{' '.join(dict(wave)[number])}\nthe end of its output ({log}):\n{tail(log)}", file=sys.stderr)
                return 1
        for number, command in ([] if side_by_side else wave):
            print(f"\n=== [{number}/{len(todo)}] {stage}: {' '.join(command[1:])}", flush=True)
            returncode, out = run_task(command, cfg.root, env, capture=stage.startswith("analysis"))
            if out is not None:
                print(out, end="", flush=True)
                summaries.append((stage, out))
            if returncode != 0:
                print(f"\nFAILED: {stage} task exited with status {returncode}: {' '.join(command)}",
                      file=sys.stderr)
                return 1
        stage_times[stage] = time.monotonic() - t0
        missing = missing_outputs(cfg, stage)
        if missing:
            print(f"\nFAILED: {stage} finished but these outputs are missing or unusable: "
                  f"{', '.join(missing)}; delete the unusable ones and run the same command again "
                  "(each stage redoes what is missing; training retrains a replica whose best "
                  "checkpoint is lost)",
                  file=sys.stderr)
            return 1

    total = time.monotonic() - started
    results = cfg.path("results")
    print("\n" + "=" * 78)
    print(f"pipeline finished: preset {cfg.preset}, root {cfg.root.resolve()}, {total / 60:.1f} min")
    print("  " + ", ".join(f"{stage} {seconds:.0f} s" for stage, seconds in stage_times.items()))
    print(f"plots:  {', '.join(sorted(p.name for p in results.glob('*.png')))}")
    print(f"tables: {', '.join(sorted(p.name for p in results.glob('*.csv')))}")
    print(f"(all in {results.resolve()})")
    for _stage, text in summaries:
        print()
        print(summary_of(text))
    print(f"\nTwo results side by side, per σ (in the tables: `central` ± `total`, and `central_calibrated` ± "
          f"`total_calibrated` with the {cfg['calibrated_centre']} centre, the recommended one):\n"
          f"  paper (σ_tot):  {GUARANTEES['paper']};\n"
          f"  calibrated:     {GUARANTEES['calibrated']}.")
    return 0


def summary_of(analysis_output: str) -> str:
    """The closing summary of an analysis script's output (from its last 'Summary' line)."""
    lines = analysis_output.strip().splitlines()
    start = max((i for i, line in enumerate(lines) if line.startswith("Summary")), default=0)
    return "\n".join(lines[start:])


@main_guard
def main(argv: list[str] | None = None) -> int:
    parser = add_common_args(argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter))
    for action in parser._actions:   # this runner's default preset is demo (not $SPECTRAL_PRESET)
        if action.dest == "preset":
            action.default, action.help = "demo", "named preset (default: demo)"
    parser.add_argument("--jobs", type=int, default=usable_cores(),
                        help="training tasks run side by side, one torch thread each, their output in "
                             "pipeline_logs/ (default: the usable cores, here %(default)s)")
    parser.add_argument("--check", action="store_true",
                        help="only check that every stage's outputs exist (exit 1 if not)")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        raise ConfigError(f"--jobs {args.jobs}: expected an integer >= 1 (tasks side by side)")
    cfg = config_from_args(args)
    cfg.root.mkdir(parents=True, exist_ok=True)
    cfg = config_from_args(argparse.Namespace(**{**vars(args), "root": str(cfg.root.resolve())}))
    if args.check:
        return check(cfg)
    exit_cleanly_on_sigterm()
    try:
        return run(cfg, args.jobs)
    except (KeyboardInterrupt, SystemExit) as stop:
        print("\ninterrupted: the running task was stopped (training saves its state); run the same "
              "command again to continue", file=sys.stderr)
        return 130 if isinstance(stop, KeyboardInterrupt) else stop.code


if __name__ == "__main__":
    sys.exit(main())
