#!/usr/bin/env python
"""Stage 1 (CPU, one Slurm array task per N_b): generate the training sets of method §3-5, §7.

    python generate_full_dataset_sigma.py --nb 128 [--preset reference] [--set n_noise=10]
    python generate_full_dataset_sigma.py --nb 128 --space prior --set prior_systematic=true
    python generate_full_dataset_sigma.py --space physical --set space=physical   # P has no N_b
    python generate_full_dataset_sigma.py --task-id $SLURM_ARRAY_TASK_ID     # tasks.generation_tasks

Writes training_datasets_T{n_t}/training_data_Nb{NB}_Nrho{NRHO}.hdf5 for every N_ρ of the
preset (prefixes of one stream), atomically; complete files made the same way are kept.  The
second space of the prior systematic (method §8) writes training_data_prior_Nb{NB}_Nrho{NRHO}.hdf5
for the N_ρ of Nref_prior; the physical space and the mixture (training_sets.py) write
training_data_physical_Nrho{NRHO}.hdf5 and training_data_mixture_Nb{NB}_Nrho{NRHO}.hdf5 for the
N_ρ of the ensembles that train on them.
"""
import argparse
import sys
import time

from cli import main_guard
from config import ConfigError, add_common_args, config_from_args
from io_utils import exit_cleanly_on_sigterm
from sigma_model_utils import SPACES
from tasks import generation_tasks
from training_sets import generate_training_files


@main_guard
def main(argv=None) -> int:
    parser = add_common_args(argparse.ArgumentParser(description=__doc__.split("\n")[0]))
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--nb", type=int, help="number of Chebyshev basis functions N_b")
    which.add_argument("--task-id", type=int, help="Slurm array index into tasks.generation_tasks")
    parser.add_argument("--space", choices=SPACES, default="chebyshev",
                        help="training space of --nb (default: chebyshev; prior: the second space "
                             "of the prior systematic; physical: the physical space, without --nb; "
                             "mixture: half chebyshev, half physical)")
    parser.add_argument("--workers", type=int, default=None,
                        help="worker processes (default: $SLURM_CPUS_PER_TASK or all usable cores)")
    parser.add_argument("--wait-lock", action="store_true",
                        help="if another process generates this N_b, wait for it instead of stopping")
    args = parser.parse_args(argv)
    exit_cleanly_on_sigterm()
    cfg = config_from_args(args)
    tasks = generation_tasks(cfg)
    if args.task_id is not None and not 0 <= args.task_id < len(tasks):
        raise ConfigError(f"--task-id {args.task_id}: the preset has {len(tasks)} generation "
                          f"tasks ((space, N_b): {tasks})")
    if args.task_id is None and args.nb is None and args.space != "physical":
        raise ConfigError("give --nb (or --task-id); only --space physical has no N_b")
    space, nb = tasks[args.task_id] if args.task_id is not None else (args.space, args.nb)
    nb = None if space == "physical" else nb
    if (space, nb) not in tasks:
        raise ConfigError(f"--nb {nb} --space {space} is not a generation task of the preset "
                          f"((space, N_b): {tasks})")
    start = time.perf_counter()
    paths = generate_training_files(cfg, nb, workers=args.workers, space=space, wait_lock=args.wait_lock)
    print(f"{space} space{'' if nb is None else f', N_b={nb}'}: {len(paths)} training file(s) ready in "
          f"{time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
