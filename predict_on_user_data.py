"""Stage 3 for your own correlator: predict it with every replica of every ensemble, every σ.

    python predict_on_user_data.py MY_CORR.h5 --name mydata [--kind jackknife] [--kernel rratio --T 64]
                                   [--preset demo] [--root DIR]

The file (HDF5) holds ``t`` [n] (time slices; they must include the networks' input slices) and
either ``samples`` [N, n] -- bootstrap or jackknife samples (attribute ``sample_kind`` or
``--kind``; jackknife errors use the jackknife formula) -- or ``mean`` [n] and ``cov`` [n, n],
the covariance of the mean, from which N_boot samples are drawn (seeded).  The attributes
``kernel`` and ``T`` (or ``--kernel``/``--T``) must be those the networks were trained with.
Writes mock_predictions_sigma{100σ}/{name}_predictions_{ensemble}_sigma{σ}.hdf5; then run
analyze_user_data.py --name NAME.
"""
import argparse
import sys

from budget import SAMPLE_KINDS
from config import add_common_args, config_from_args
from devices import configure_threads
from mocks import MOCKS
from prediction import predict_all, print_report, read_user_samples
from sigma_model_utils import KERNELS


def main(argv=None) -> int:
    parser = add_common_args(argparse.ArgumentParser(description=__doc__.split("\n")[0]))
    parser.add_argument("input", help="HDF5 file with t and samples, or t, mean and cov")
    parser.add_argument("--name", required=True, help="name of the result files (not O3 or delta_tanh)")
    parser.add_argument("--kind", choices=SAMPLE_KINDS,
                        help="what the samples are (else the file's sample_kind)")
    parser.add_argument("--kernel", choices=KERNELS,
                        help="kernel of the correlator (else the file's attribute)")
    parser.add_argument("--T", type=int, help="temporal extent T (else the file's attribute)")
    parser.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    args = parser.parse_args(argv)
    if args.name in MOCKS or not args.name.replace("_", "").replace("-", "").isalnum():
        parser.error(f"--name {args.name!r}: use letters, digits, - and _, and not a mock's name {MOCKS}")
    try:
        cfg = config_from_args(args)
        configure_threads()
        inputs = read_user_samples(args.input, cfg, args.name, args.kind, args.kernel, args.T)
        print(f"{args.input}: {len(inputs.samples)} {inputs.kind} samples "
              f"on t={cfg['t_min']}..{cfg['t_max']}")
        report = predict_all(cfg, inputs, args.device)
    except ValueError as err:          # ConfigError and InputError: one clear message
        print(f"error: {err}", file=sys.stderr)
        return 2
    return print_report(report)


if __name__ == "__main__":
    sys.exit(main())
