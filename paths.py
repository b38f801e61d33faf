"""Where every stage's files lie under --root (SPEC §10): the path methods of config.Config.

``OutputPaths`` is mixed into config.Config; it needs the configuration's ``root`` and ``n_t``.
The lock files live in locks/ under --root, beside no output.
"""
from __future__ import annotations

from pathlib import Path

from io_utils import REPO_DIR

STANDIN_NOISE_FILE = "data/standin_baryon_T64.h5"   # the noise file shipped here (SPEC §4)


def sigma_tag(sigma_gev: float) -> int:
    """The directory tag 100·σ of SPEC §10 (0.44 -> 44)."""
    return int(round(100 * float(sigma_gev)))


class OutputPaths:
    """The SPEC §10 paths of a configuration with ``root`` (--root) and ``n_t`` (input slices)."""
    root: Path
    n_t: int

    def path(self, relative: str | Path) -> Path:
        return self.root / relative

    def input_path(self, relative: str | Path) -> Path:
        """An input file: under --root if it is there, else the copy shipped in this repository
        (e.g. the stand-in noise file data/standin_baryon_T64.h5), else the --root path (which
        the reader then reports as missing)."""
        under_root = self.root / relative
        shipped = REPO_DIR / relative
        return under_root if under_root.exists() or not shipped.exists() else shipped

    def training_file(self, nb: int, nrho: int, space: str = "chebyshev") -> Path:
        """SPEC §10's training file; the second space of the prior systematic has its own name."""
        name = "" if space == "chebyshev" else f"{space}_"
        return self.root / f"training_datasets_T{self.n_t}" / f"training_data_{name}Nb{nb}_Nrho{nrho}.hdf5"

    def model_dir(self, sigma_gev: float, ensemble: str) -> Path:
        return self.root / f"trained_models_sigma{sigma_tag(sigma_gev)}" / ensemble

    def checkpoint(self, sigma_gev: float, ensemble: str, replica: int) -> Path:
        return self.model_dir(sigma_gev, ensemble) / f"replica_{replica}_best.pth"

    def state_path(self, sigma_gev: float, ensemble: str, replica: int) -> Path:
        """The resumable training state of a replica (checkpoints.save_state)."""
        return self.model_dir(sigma_gev, ensemble) / f"replica_{replica}_state.pth"

    def history_path(self, sigma_gev: float, ensemble: str, replica: int) -> Path:
        return self.model_dir(sigma_gev, ensemble) / f"replica_{replica}_best_history.csv"

    def replica_lock(self, sigma_gev: float, ensemble: str, replica: int) -> Path:
        """Held by the one process training this replica (io_utils.task_lock)."""
        return self.root / "locks" / f"training_sigma{sigma_tag(sigma_gev)}_{ensemble}_replica_{replica}.lock"

    def generation_lock(self, nb: int, space: str = "chebyshev") -> Path:
        """Held by the one process generating the training files of this N_b and space."""
        return self.root / "locks" / f"generation_T{self.n_t}_{space}_Nb{nb}.lock"

    def prediction_lock(self, name: str) -> Path:
        """Held by the one process predicting the input ``name`` (every ensemble and σ)."""
        return self.root / "locks" / f"prediction_{name}.lock"

    def analysis_lock(self, name: str) -> Path:
        """Held by the one process analysing the input ``name`` (every σ)."""
        return self.root / "locks" / f"analysis_{name}.lock"

    def prediction_file(self, mock: str, ensemble: str, sigma_gev: float) -> Path:
        return (self.root / f"mock_predictions_sigma{sigma_tag(sigma_gev)}"
                / f"{mock}_predictions_{ensemble}_sigma{sigma_gev}.hdf5")

    def results_file(self, mock: str, sigma_gev: float, suffix: str) -> Path:
        return self.root / "results" / f"{mock}_sigma{sigma_gev}_{suffix}"

    def mock_file(self, mock: str) -> Path:
        """A validation mock's exact correlator, noise covariance and truths (generate_delta_mock.py)."""
        return self.root / "mocks" / f"{mock}_mock.hdf5"
