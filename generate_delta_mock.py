"""Write a validation mock (method §9) to a file, with a picture of it.

The delta peak + tanh continuum by default (``--mock O3`` for the O(3) mock): its exact
correlator ``mean`` [n_t] with the noise covariance ``cov`` = s²Σ_latt of method §4 and ``t`` (the
user-data layout: predict_on_user_data.py can read it), and its exact smeared truths for every σ;
parameters from the preset (delta_A, delta_M, delta_B, delta_Ec, delta_w; o3_threshold; the
choice of B, E_c, w is explained in mocks.py).

    python generate_delta_mock.py [--preset demo] [--mock delta_tanh|O3] [--set delta_M=0.9]
writes mocks/{mock}_mock.hdf5 and mocks/{mock}_mock.png under --root.
"""
import argparse
import sys

import numpy as np

from cli import main_guard
from config import add_common_args, config_from_args
from figures import plt, save_png
from io_utils import check_writable
from mocks import MOCKS, make_mock, write_mock_file
from noise_files import load_noise_file


def plot_mock(cfg, mock, path) -> None:
    """A mock's density ρ(ω) (its delta as an arrow) and its exact smeared truths, every σ."""
    omega = np.linspace(1e-3, 1.2 * cfg.energies.max(), 2000)
    fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    ax.plot(omega, mock.density(omega), "k", lw=1.2, label=r"$\rho(\omega)$")
    if mock.peak is not None:
        A, M = mock.peak
        ax.plot([M, M], [0, A], "k-", lw=1.5)
        ax.plot([M], [A], "k^", ms=7, label=rf"${A:g}\,\delta(\omega-{M:g})$ (arrow height = A)")
    for i, (sigma_gev, truth) in enumerate(mock.truth.items()):
        ax.plot(cfg.energies, truth, "o-", ms=3, color=f"C{i}", label=rf"$\rho_\sigma(E)$, σ = {sigma_gev}")
    ax.set(xlabel=r"$\omega$, E (lattice units)", ylabel="density",
           title=f"{mock.name} mock: " + ", ".join(f"{k}={v:g}" for k, v in mock.parameters.items()))
    ax.legend(fontsize=8)
    save_png(fig, path)


@main_guard
def main(argv=None) -> int:
    parser = add_common_args(argparse.ArgumentParser(description=__doc__.split("\n")[0]))
    parser.add_argument("--mock", choices=MOCKS, default="delta_tanh")
    args = parser.parse_args(argv)
    cfg = config_from_args(args)
    path = cfg.mock_file(args.mock)
    check_writable(path.parent, "mock files")
    noise = load_noise_file(cfg.input_path(cfg["noise_file"]), cfg)
    mock = make_mock(args.mock, cfg)
    write_mock_file(cfg, mock, noise, path)
    picture = path.with_suffix(".png")
    plot_mock(cfg, mock, picture)
    print(f"wrote {path}\nwrote {picture}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
