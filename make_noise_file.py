"""Turn per-configuration correlator data into a noise file (method §4, §10).

Input: per-configuration measurements of a correlator in any format of correlator_files.py (the
format detected or given by --format): the project's HDF5 (dataset --tag, default 'samples', with
``t`` or columns t = 0, 1, ...), pyerrors JSON / JSON.gz (a Corr or a list of Obs), a gvar /
corrfitter data set (lines 'TAG v0 v1 ...', --tag picks the correlator), lsdensities' text
format, plain text (.txt/.dat/.data/.csv: one row per configuration, columns t = 0, 1, ...) or
NumPy (.npy).  Output: data/<input>_noise.h5 under --root (or -o FILE, or -o DIR/) with the mean,
the covariance of the mean and the time slices, checked against the preset's input slices.

    python make_noise_file.py samples.npy --bin 4
    python make_noise_file.py etas.data --format gvar --tag etas --fold --t-range 1-32
    python make_noise_file.py corr.json.gz --fold -o data/
"""
import argparse
import sys
from pathlib import Path

import numpy as np

from cli import main_guard
from config import add_common_args, config_from_args
from correlator_files import FORMATS, fold_correlator, read_correlator
from io_utils import InputError
from noise_files import noise_from_samples, select_slices, write_noise_file


def t_range(text: str) -> tuple[int, int]:
    first, _, last = text.partition("-")
    try:
        return int(first), int(last or first)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected FIRST-LAST, e.g. 1-32") from None


def output_path(args, cfg, name: str) -> Path:
    """-o FILE, or DIR/<name>_noise.h5 for -o DIR (an existing folder or one ending in /), or
    data/<name>_noise.h5 under --root."""
    if not args.output:
        return cfg.path(f"data/{name}_noise.h5")
    output = Path(args.output)
    if output.is_dir() or args.output.endswith(("/", "\\")):
        return output / f"{name}_noise.h5"
    return output


@main_guard
def main(argv=None) -> int:
    parser = add_common_args(argparse.ArgumentParser(
        description=__doc__.split("\n")[0], epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter))
    parser.add_argument("input", help="per-configuration data (rows = configurations)")
    parser.add_argument("--format", choices=FORMATS, help="input format (default: detected)")
    parser.add_argument("--tag", help="HDF5 dataset name, or the tag of a gvar data set")
    parser.add_argument("--bin", type=int, default=1, help="average consecutive configurations in "
                        "bins of this size first (default 1)")
    parser.add_argument("--t-range", type=t_range, help="time slices FIRST-LAST to keep "
                        "(default: the preset's t_min-t_max)")
    parser.add_argument("--fold", action="store_true", help="fold a periodic correlator over "
                        "t = 0..T-1: (C(t) + C(T-t))/2, t = 0..T/2 (mesons; not for baryons, whose "
                        "backward-propagating state is a different one)")
    parser.add_argument("--source", help="description stored in the file (default: the input's name)")
    parser.add_argument("-o", "--output", help="output file, or a folder (default: data/<input>_noise.h5 "
                        "under --root)")
    args = parser.parse_args(argv)
    cfg = config_from_args(args)
    corr = read_correlator(args.input, args.format, args.tag)
    if corr.values is None or corr.kind not in (None, "configurations"):
        raise InputError(args.input, corr.key, f"holds {corr.kind or 'a mean and covariance'}; a noise file "
                         "is made from per-configuration data (a mean and covariance of the mean is "
                         "already one: give it to --set noise_file=)")
    if args.fold:
        corr = fold_correlator(corr)
    t_first, t_last = args.t_range or (cfg["t_min"], cfg["t_max"])
    select_slices(args.input, np.arange(t_first, t_last + 1), cfg, key="--t-range")
    t, mean, cov, n_bins = noise_from_samples(corr.values, t_first, t_last, args.bin, path=args.input,
                                              key=corr.key, t_columns=corr.slices)
    name = Path(args.input).stem.removesuffix(".json") + (f"_{args.tag}" if args.tag else "")
    output = output_path(args, cfg, name)
    source = args.source or f"{Path(args.input).name}" + (f" [{args.tag}]" if args.tag else "")
    write_noise_file(output, mean, cov, t, source, n_bins, cfg, input_file=str(args.input),
                     input_format=corr.fmt, tag=args.tag or "", bin_size=args.bin, folded=int(args.fold),
                     n_configurations=corr.values.shape[0])
    rel = np.sqrt(np.diag(cov)) / np.abs(mean)
    sd = np.sqrt(np.diag(cov))
    print(f"wrote {output}\n  {corr.values.shape[0]} configurations -> {n_bins} bins of {args.bin}"
          f"{', folded' if args.fold else ''}; t = {int(t[0])}..{int(t[-1])}\n"
          f"  relative error of the mean: {rel[0]:.2e} at t = {int(t[0])}, "
          f"{rel[-1]:.2e} at t = {int(t[-1])}\n"
          f"  condition number: cov {np.linalg.cond(cov):.2e}, correlation matrix "
          f"{np.linalg.cond(cov / np.outer(sd, sd)):.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
