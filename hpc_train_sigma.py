"""Stage 2 worker: train replicas of one ensemble for one σ (method §5-7; the loop is in training.py).

    python hpc_train_sigma.py --ensemble Nmax --replica 0 --sigma 0.44 [--preset ...]
    python hpc_train_sigma.py --ensemble Nmax --replicas 0-4 --sigma 0.44     # 5 replicas batched
    python hpc_train_sigma.py --task-id $SLURM_ARRAY_TASK_ID                  # one run of the array
    python hpc_train_sigma.py --task-id 0-4                                   # a range: batched groups

Array index -> (ensemble, replica, σ) is tasks.training_tasks (the one place; `python config.py
--preset P array-size training` gives the array size): i = (σ_index·N_ensembles + ensemble_index)·N_r
+ replica, so i = 0..N_r−1 are the replicas of the first ensemble at the first σ.

Writes under --root: trained_models_sigma{100σ}/{ensemble}/replica_{r}_best.pth (the best network,
self-contained), replica_{r}_best_history.csv (epoch, train_loss, val_loss, lr) and
replica_{r}_state.pth (resumable state); for the interval networks (--ensemble Nmax_interval, the
array's last tasks with interval_networks=true) the same files as Nmax/interval_{r}_*.  On SIGTERM
or SIGUSR1 (Slurm: the time-limit warning, SPECTRAL_TRAINING_SIGNAL = B:USR1@300 in
slurm_scripts/cluster.env, passed on by the job script; or Slurm's SIGTERM before the kill) the
state is saved after the current step and the worker exits with
status 75; run it again with the same arguments to continue.  A finished run does nothing.
One process trains a replica: a second run on the same replicas stops at once (status 2), naming
the holder of replica_{r}.lock (host, PID, Slurm job), or waits for it with --wait-lock.
Exit status: 0 done, 2 bad input or arguments or replicas being trained elsewhere, 75 stopped on
request (state saved).
"""
import argparse
import sys

from cli import main_guard
from config import add_common_args, config_from_args
from devices import configure_threads, float32_precision, select_device
from io_utils import check_writable
from settings import NOISE_MODES
from tasks import parse_index_range
from training import train_replicas
from training_runs import EXIT_PREEMPTED, Preemption, check_run, runs_from_task_ids


def parse_args(argv=None):
    parser = add_common_args(argparse.ArgumentParser(description=__doc__.split("\n")[0]))
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--task-id", help="Slurm array index or range (e.g. 7, 0-4, 0,5-9)")
    which.add_argument("--ensemble",
                       help="ensemble label of the preset (e.g. Nmax, Nref_b, Nref_n, Nref_rho), or "
                            "Nmax_interval for the interval networks")
    parser.add_argument("--replica", "--replicas", dest="replicas",
                        help="replica index or range with --ensemble (e.g. 0 or 0-4)")
    parser.add_argument("--sigma", type=float,
                        help="smearing width in GeV as in the preset (with --ensemble)")
    parser.add_argument("--noise", choices=NOISE_MODES,
                        help="the same as --set noise=MODE (default: the preset's, replica): replica: "
                             "each replica's own N_noise noisy copies; stored: the training file's "
                             "copies, shared by the replicas; fresh: new noise every epoch")
    parser.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--wait-lock", action="store_true",
                        help="if another process trains these replicas, wait for it instead of stopping")
    args = parser.parse_args(argv)
    if args.noise is not None:
        args.overrides.append(f"noise={args.noise}")
    if args.ensemble is not None and (args.replicas is None or args.sigma is None):
        parser.error("--ensemble needs --replica R (or a range) and --sigma S")
    if args.task_id is not None and (args.replicas is not None or args.sigma is not None):
        parser.error("--task-id selects ensemble, replica and sigma itself; drop --replica/--sigma")
    return args


@main_guard
def main(argv=None) -> int:
    args = parse_args(argv)
    cfg = config_from_args(args)
    if args.task_id is not None:
        runs = runs_from_task_ids(cfg, args.task_id)
    else:
        runs = [check_run(cfg, args.ensemble, args.sigma, parse_index_range(args.replicas))]
    for ensemble, sigma, _ in runs:
        check_writable(cfg.model_dir(sigma, ensemble), "trained networks")
    threads = configure_threads()
    device = select_device(args.device, cfg["tf32"])
    print(f"preset {cfg.preset}, device {device}, {float32_precision()}, {threads} CPU thread(s); runs: "
          + "; ".join(f"{e} sigma={s} replicas {r}" for e, s, r in runs))
    with Preemption() as stop:
        for ensemble, sigma, replicas in runs:
            status = train_replicas(cfg, ensemble, sigma, replicas, device=device, stop=stop,
                                    wait_lock=args.wait_lock)
            if "preempted" in status.values():
                return EXIT_PREEMPTED
    return 0


if __name__ == "__main__":
    sys.exit(main())
