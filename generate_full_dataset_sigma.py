#!/usr/bin/env python
"""Stage 1 (CPU, one Slurm array task per N_b): generate the training sets of SPEC §3-5, §7.

    python generate_full_dataset_sigma.py --nb 128 [--preset reference] [--set n_noise=10]
    python generate_full_dataset_sigma.py --task-id $SLURM_ARRAY_TASK_ID     # i -> nb_list[i]

Writes training_datasets_T{n_t}/training_data_Nb{NB}_Nrho{NRHO}.hdf5 for every N_ρ of the
preset (prefixes of one stream), atomically; complete files made the same way are kept.
"""
import argparse
import sys
import time

from config import ConfigError, add_common_args, config_from_args, generation_tasks
from io_utils import InputError, exit_cleanly_on_sigterm
from training_sets import generate_training_files


def main(argv=None) -> int:
    parser = add_common_args(argparse.ArgumentParser(description=__doc__.split("\n")[0]))
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--nb", type=int, help="number of Chebyshev basis functions N_b")
    which.add_argument("--task-id", type=int, help="Slurm array index into the preset's nb_list")
    parser.add_argument("--workers", type=int, default=None,
                        help="worker processes (default: $SLURM_CPUS_PER_TASK or all usable cores)")
    args = parser.parse_args(argv)
    exit_cleanly_on_sigterm()
    try:
        cfg = config_from_args(args)
        tasks = generation_tasks(cfg)
        if args.task_id is not None and not 0 <= args.task_id < len(tasks):
            raise ConfigError(f"--task-id {args.task_id}: the preset has {len(tasks)} generation "
                              f"tasks (nb_list={tasks})")
        nb = tasks[args.task_id] if args.task_id is not None else args.nb
        if nb not in tasks:
            raise ConfigError(f"--nb {nb} is not in the preset's nb_list {tasks}")
        start = time.perf_counter()
        paths = generate_training_files(cfg, nb, workers=args.workers)
    except (ConfigError, InputError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"N_b={nb}: {len(paths)} training file(s) ready in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
