"""Turn per-configuration correlator samples into a noise file (SPEC §4, §10).

Input: one row per configuration, columns t = 0, 1, ..., n-1 (formats: see noise_files.py):
text (.txt/.dat/.csv), NumPy (.npy), HDF5 (.h5/.hdf5, dataset --tag, default 'samples') or the
gvar/corrfitter dataset text format (.gvar, or --format gvar; lines 'TAG v0 v1 ...', --tag picks
the correlator).  Output: data/<input>_noise.h5 under --root (or -o) with the mean, the
covariance of the mean and the time slices, checked against the preset's input slices.

    python make_noise_file.py samples.npy --bin 4
    python make_noise_file.py etas.data --format gvar --tag etas --fold --t-range 1-32
"""
import argparse
import sys
from pathlib import Path

import numpy as np

from config import ConfigError, add_common_args, config_from_args
from io_utils import InputError
from noise_files import FORMATS, detect_format, noise_from_samples, read_samples, write_noise_file


def t_range(text: str) -> tuple[int, int]:
    first, _, last = text.partition("-")
    try:
        return int(first), int(last or first)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected FIRST-LAST, e.g. 1-32") from None


def main(argv=None) -> int:
    parser = add_common_args(argparse.ArgumentParser(
        description=__doc__.split("\n")[0], epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter))
    parser.add_argument("input", help="per-configuration samples [N_cfg, n] (rows = configurations)")
    parser.add_argument("--format", choices=sorted(set(FORMATS.values())),
                        help="input format (default: from the extension)")
    parser.add_argument("--tag", help="HDF5 dataset name, or the tag of a gvar dataset file")
    parser.add_argument("--bin", type=int, default=1, help="average consecutive configurations in "
                        "bins of this size first (default 1)")
    parser.add_argument("--t-range", type=t_range, help="time slices FIRST-LAST to keep "
                        "(columns are t = 0, 1, ...; default: the preset's t_min-t_max)")
    parser.add_argument("--fold", action="store_true", help="fold a periodic correlator over "
                        "t = 0..T-1, T = number of columns: (C(t) + C(T-t))/2, t = 0..T/2 (mesons; not for "
                        "baryons, whose backward-propagating state is a different one)")
    parser.add_argument("--source", help="description stored in the file (default: the input's name)")
    parser.add_argument("-o", "--output", help="output file (default: data/<input>_noise.h5 under --root)")
    args = parser.parse_args(argv)
    try:
        cfg = config_from_args(args)
        fmt = args.format or detect_format(args.input)
        samples = read_samples(args.input, fmt, args.tag)
        t_first, t_last = args.t_range or (cfg["t_min"], cfg["t_max"])
        t, mean, cov, n_bins = noise_from_samples(samples, t_first, t_last, args.bin, args.fold,
                                                  path=args.input, key=args.tag)
        name = Path(args.input).stem + (f"_{args.tag}" if args.tag else "")
        output = Path(args.output) if args.output else cfg.path(f"data/{name}_noise.h5")
        source = args.source or f"{Path(args.input).name}" + (f" [{args.tag}]" if args.tag else "")
        write_noise_file(output, mean, cov, t, source, n_bins, cfg, input_file=str(args.input),
                         input_format=fmt, tag=args.tag or "", bin_size=args.bin, folded=int(args.fold),
                         n_configurations=samples.shape[0])
    except (InputError, ConfigError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    rel = np.sqrt(np.diag(cov)) / np.abs(mean)
    sd = np.sqrt(np.diag(cov))
    print(f"wrote {output}\n  {samples.shape[0]} configurations -> {n_bins} bins of {args.bin}"
          f"{', folded' if args.fold else ''}; t = {int(t[0])}..{int(t[-1])}\n"
          f"  relative error of the mean: {rel[0]:.2e} at t = {int(t[0])}, "
          f"{rel[-1]:.2e} at t = {int(t[-1])}\n"
          f"  condition number: cov {np.linalg.cond(cov):.2e}, correlation matrix "
          f"{np.linalg.cond(cov / np.outer(sd, sd)):.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
