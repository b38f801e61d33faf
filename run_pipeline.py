"""Run the whole pipeline here, without Slurm, then the analysis (method §10).

The same tasks as slurm_scripts/submit_all.sh, in the same order, each Slurm array index in turn:

    python run_pipeline.py                      # the `demo` preset: minutes on a laptop
    python run_pipeline.py --preset tiny --root /tmp/try
    python run_pipeline.py --check --preset tiny --root DIR   # only check every stage's outputs

Stages: generation (one task per N_b, and one for the prior space with the prior systematic:
tasks.generation_tasks) -> training (one task per
(ensemble, σ) group of replicas, then with interval_networks one per σ for the interval networks:
tasks.training_groups) -> with interval_networks the calibration (calibrate_sigma.py, every σ) ->
for each mock: prediction, then its analysis. Each task is a separate process with the pipeline's --preset/--set/--root,
exactly as a
Slurm job runs it. Finished work is kept by the stages themselves (a complete training file or a
finished replica is not redone), so a rerun after an interruption continues. The run stops at the
first failing task and names it. At the end it prints where the plots and result tables are and
the analysis summaries (level-1 coverage, mean |pull| and R_bv per mock and σ). Each task gets one
torch thread unless OMP_NUM_THREADS is set (see task_environment).

Each task runs in its own process group (``run_task``).  Interrupted (Ctrl-C, SIGTERM) the runner
sends SIGTERM to the task's group -- training saves its state, generation removes its temporary
files -- waits up to STOP_GRACE_S seconds, then kills what is left.  On Linux a task also gets
SIGTERM when the runner itself dies, even by SIGKILL (prctl PR_SET_PDEATHSIG), so no task
outlives it; and the training lock keeps any survivor from racing a rerun.
"""
from __future__ import annotations

import argparse
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
    if cfg["interval_networks"]:            # the calibrated error's factors, every σ (calibrate_sigma.py)
        out.append(("calibration", python + [str(REPO / "calibrate_sigma.py"), *options]))
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
    if cfg["interval_networks"]:
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


def stop_task(proc: subprocess.Popen) -> None:
    """SIGTERM to the task's process group, SIGKILL to whatever is left after STOP_GRACE_S."""
    for sig, grace in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=grace)
            break
        except subprocess.TimeoutExpired:
            continue


def run_task(command: list[str], cwd, env, capture: bool = False) -> tuple[int, str | None]:
    """Run one task in its own process group; (exit status, its stdout if captured).  An
    interruption of the runner (KeyboardInterrupt, SystemExit from SIGTERM) stops the task first."""
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE if capture else None,
                            text=True, start_new_session=True, preexec_fn=_task_setup(os.getpid()))
    try:
        out, _ = proc.communicate()
    except BaseException:
        stop_task(proc)
        raise
    return proc.returncode, out


def run(cfg: Config) -> int:
    todo = tasks(cfg)
    env = task_environment()
    print(f"{len(todo)} tasks; torch threads per task: OMP_NUM_THREADS={env['OMP_NUM_THREADS']}")
    started, summaries, stage_times = time.monotonic(), [], {}
    for number, (stage, command) in enumerate(todo, 1):
        print(f"\n=== [{number}/{len(todo)}] {stage}: {' '.join(command[1:])}", flush=True)
        t0 = time.monotonic()
        returncode, out = run_task(command, cfg.root, env, capture=stage.startswith("analysis"))
        if out is not None:
            print(out, end="", flush=True)
            summaries.append((stage, out))
        stage_times[stage] = stage_times.get(stage, 0.0) + time.monotonic() - t0
        if returncode != 0:
            print(f"\nFAILED: {stage} task exited with status {returncode}: {' '.join(command)}",
                  file=sys.stderr)
            return 1
        is_last_task_of_stage = number == len(todo) or todo[number][0] != stage
        if is_last_task_of_stage:
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
    if cfg["interval_networks"]:
        print(f"\nTwo results side by side, per σ (in the tables: `central` ± `total`, and `central_calibrated` ± "
              f"`total_calibrated` with the {cfg['calibrated_centre']} centre):\n"
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
    parser.add_argument("--check", action="store_true",
                        help="only check that every stage's outputs exist (exit 1 if not)")
    args = parser.parse_args(argv)
    cfg = config_from_args(args)
    cfg.root.mkdir(parents=True, exist_ok=True)
    cfg = config_from_args(argparse.Namespace(**{**vars(args), "root": str(cfg.root.resolve())}))
    if args.check:
        return check(cfg)
    exit_cleanly_on_sigterm()
    try:
        return run(cfg)
    except (KeyboardInterrupt, SystemExit) as stop:
        print("\ninterrupted: the running task was stopped (training saves its state); run the same "
              "command again to continue", file=sys.stderr)
        return 130 if isinstance(stop, KeyboardInterrupt) else stop.code


if __name__ == "__main__":
    sys.exit(main())
