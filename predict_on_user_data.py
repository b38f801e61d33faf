"""Stage 3 for your own correlators: predict them with every replica of every ensemble, every σ.

    python predict_on_user_data.py FILE [FILE ...] [--name NAME] [--format F] [--tag TAG] [--kind KIND]
                                   [--fold] [--bin B] [--resample bootstrap|jackknife] [--n-boot all]
                                   [--kernel periodic --T 64] [--preset demo] [--root DIR]

Several files, or a file holding several correlators (HDF5 groups, a pyerrors dictionary, a gvar
data set with several tags), are predicted in one call: the checkpoints are read once, and each
correlator's files are those a call for it alone writes.  Each correlator is named after its file
(without the format's suffix), followed by _KEY (the group, key or tag) for a file holding several;
--name names a single correlator and prefixes several (NAME_...); two correlators with one name
are refused before anything runs.  A correlator that fails is named in one line and the others go
on; the exit status is then not 0 (2: bad input, 1: nothing predicted).

FILE is a correlator in any format of correlator_files.py (detected, or --format): pyerrors JSON
/ JSON.gz (a Corr or a list of Obs), a gvar / corrfitter data set ('TAG v0 v1 ...' lines, --tag
picks the correlator), lsdensities' text format, plain text or .npy (one row per configuration,
columns t = 0, 1, ...), or the project's HDF5 (``t`` [n] and ``samples`` [N, n] with attribute
``sample_kind`` = configurations | bootstrap | jackknife, or ``mean`` [n] + ``cov`` [n, n], the
covariance of the mean; attributes ``kernel`` and ``T``).  Per-configuration data are folded
(--fold, periodic correlators), binned (--bin) and resampled here: N_boot bootstrap means with
the preset's seed (--resample bootstrap, the default) or the jackknife means.  Bootstrap or
jackknife samples are used as they are (jackknife errors use the jackknife formula); a file of
bootstrap samples must hold N_boot of them (--set n_boot=N), or --n-boot all takes however many it
holds and the files record n_boot = "all" (the analysis then does not compare N_boot); a mean and
covariance gives N_boot seeded draws.  Every file records the number of samples and how they were
made.  The time slices must include the networks' input slices
and the kernel and T (the file's, or --kernel/--T) must be those the networks were trained with.
Writes mock_predictions_sigma{100σ}/{name}_predictions_{ensemble}_sigma{σ}.hdf5; then run
analyze_user_data.py with the same files and --name (or --name NAME of one correlator).
"""
import argparse
import functools
import sys

from cli import add_wait_lock_arg, main_guard, run_each
from config import add_common_args, config_from_args
from correlator_files import FORMATS
from devices import configure_threads
from mocks import user_data_name
from prediction import Audience, add_force_arg, predict_all, print_report
from roles import ROW_KINDS, SAMPLE_KINDS
from sigma_model_utils import KERNELS
from user_correlators import NamedCorrelator, correlator_names, describe_inputs, user_samples


@main_guard
def main(argv=None) -> int:
    parser = add_common_args(argparse.ArgumentParser(
        description=__doc__.split("\n")[0], epilog=__doc__.split("\n\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter))
    parser.add_argument("inputs", nargs="+", metavar="FILE", help="the correlator files (formats: below)")
    parser.add_argument("--name", type=user_data_name,
                        help="name of the result files of a single correlator, the prefix NAME_ of several "
                             "(letters, digits, - and _; not O3 or delta_tanh; default: the file's name)")
    parser.add_argument("--format", choices=FORMATS, help="input format (default: detected)")
    parser.add_argument("--tag", help="the correlator of a file holding several: an HDF5 dataset or group, "
                        "the tag of a gvar data set, the key of a pyerrors dictionary (default: all of them)")
    parser.add_argument("--kind", choices=ROW_KINDS, help="what the rows are (else the file's sample_kind; "
                        "formats other than HDF5 hold configurations)")
    parser.add_argument("--fold", action="store_true", help="fold a periodic correlator over t = 0..T-1: "
                        "(C(t) + C(T-t))/2 (mesons; not baryons)")
    parser.add_argument("--bin", type=int, default=1, help="bin consecutive configurations first (default 1)")
    parser.add_argument("--resample", choices=SAMPLE_KINDS, default="bootstrap",
                        help="how configurations are resampled (default bootstrap, N_boot of the preset)")
    parser.add_argument("--n-boot", choices=("settings", "all"), default="settings",
                        help="a file of bootstrap samples: 'settings' (the default) requires as many as the "
                             "setting n_boot; 'all' takes the file's samples as they are, however many")
    parser.add_argument("--kernel", choices=KERNELS, help="kernel of the correlator (else the file's attribute)")
    parser.add_argument("--T", type=int, help="temporal extent T (else the file's attribute)")
    parser.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    add_force_arg(parser)
    add_wait_lock_arg(parser, "predicts this --name")
    args = parser.parse_args(argv)
    if args.bin < 1:
        parser.error(f"--bin {args.bin}: expected a positive integer")
    cfg = config_from_args(args)
    configure_threads()
    audience = Audience(cfg, args.device)
    return run_each([(c.label, functools.partial(predict_one, cfg, args, audience, c))
                     for c in correlator_names(args.inputs, args.name, args.format, args.tag)])


def predict_one(cfg, args, audience: Audience, correlator: NamedCorrelator) -> int:
    """One correlator, predicted as a call for it alone does."""
    inputs = user_samples(correlator.read(), cfg, correlator.name, args.kind, args.kernel, args.T, args.fold,
                          args.bin, args.resample, args.n_boot == "all")
    print(f"{describe_inputs(inputs)}, on t={cfg['t_min']}..{cfg['t_max']}")
    return print_report(predict_all(cfg, inputs, args.device, args.force, args.wait_lock, audience))


if __name__ == "__main__":
    sys.exit(main())
