"""Where every stage's files lie under --root (method §10): the path methods of config.Config.

``OutputPaths`` is mixed into config.Config; it needs the configuration's ``root`` and ``n_t``.
The lock files live in locks/ under --root, beside no output.
"""
from __future__ import annotations

from pathlib import Path

from io_utils import REPO_DIR
from roles import INTERVAL_RUN, REFERENCE

STANDIN_NOISE_FILE = "data/standin_baryon_T64.h5"   # the noise file shipped here (method §4)


def sigma_tag(sigma_gev: float) -> int:
    """The directory tag 100·σ of method §10 (0.44 -> 44)."""
    return int(round(100 * float(sigma_gev)))


class OutputPaths:
    """The method §10 paths of a configuration with ``root`` (--root) and ``n_t`` (input slices)."""
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

    def training_file(self, nb: int | None, nrho: int, space: str = "chebyshev") -> Path:
        """The training file; the other spaces have their own names, the physical space's
        without N_b (it has no basis: ``nb`` is ignored)."""
        name = {"chebyshev": f"Nb{nb}", "physical": "physical"}.get(space, f"{space}_Nb{nb}")
        return self.root / f"training_datasets_T{self.n_t}" / f"training_data_{name}_Nrho{nrho}.hdf5"

    def model_dir(self, sigma_gev: float, ensemble: str) -> Path:
        """The folder of an ensemble's networks; the interval networks (INTERVAL_RUN) live in Nmax's."""
        folder = REFERENCE if ensemble == INTERVAL_RUN else ensemble
        return self.root / f"trained_models_sigma{sigma_tag(sigma_gev)}" / folder

    @staticmethod
    def _network(ensemble: str, replica: int) -> str:
        """The start of a trained network's file names: replica_{r}, or interval_{r}."""
        return f"{'interval' if ensemble == INTERVAL_RUN else 'replica'}_{replica}"

    def checkpoint(self, sigma_gev: float, ensemble: str, replica: int) -> Path:
        return self.model_dir(sigma_gev, ensemble) / f"{self._network(ensemble, replica)}_best.pth"

    def state_path(self, sigma_gev: float, ensemble: str, replica: int) -> Path:
        """The resumable training state of a replica (checkpoints.save_state)."""
        return self.model_dir(sigma_gev, ensemble) / f"{self._network(ensemble, replica)}_state.pth"

    def history_path(self, sigma_gev: float, ensemble: str, replica: int) -> Path:
        return self.model_dir(sigma_gev, ensemble) / f"{self._network(ensemble, replica)}_best_history.csv"

    def replica_lock(self, sigma_gev: float, ensemble: str, replica: int) -> Path:
        """Held by the one process training this replica (io_utils.task_lock)."""
        return self.root / "locks" / f"training_sigma{sigma_tag(sigma_gev)}_{ensemble}_replica_{replica}.lock"

    def generation_lock(self, nb: int | None, space: str = "chebyshev") -> Path:
        """Held by the one process generating the training files of this N_b and space."""
        name = "physical" if space == "physical" else f"{space}_Nb{nb}"
        return self.root / "locks" / f"generation_T{self.n_t}_{name}.lock"

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

    def task_log(self, number: int, stage: str) -> Path:
        """The output of task ``number`` (of ``stage``) of run_pipeline.py when it runs beside others (--jobs)."""
        return self.root / "pipeline_logs" / f"task{number:02d}_{stage.replace(' ', '_')}.log"

    def calibration_file(self, sigma_gev: float) -> Path:
        """The conformal calibration of one σ (calibration_files.py)."""
        return self.root / "calibration" / f"calibration_sigma{sigma_tag(sigma_gev)}.h5"

    def mock_file(self, mock: str) -> Path:
        """A validation mock's exact correlator, noise covariance and truths (generate_delta_mock.py)."""
        return self.root / "mocks" / f"{mock}_mock.hdf5"
