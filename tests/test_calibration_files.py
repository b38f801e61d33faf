"""The calibration file: written and read by its owner, bound to the networks it was made with."""
import numpy as np
import pytest

import calibration_files as cf
from calibration import CENTRES
from config import load_config
from io_utils import InputError


@pytest.fixture
def cfg(tmp_path):
    return load_config("tiny", [], tmp_path)


def calibration(cfg, networks):
    n_e = cfg["n_energies"]
    g = np.random.default_rng(0)
    return cf.Calibration(Q={c: g.uniform(0.5, 2, n_e) for c in CENTRES}, S=g.uniform(0.5, 2, n_e),
                          R={c: np.eye(n_e) for c in CENTRES}, coverage={c: np.full(n_e, 0.7) for c in CENTRES},
                          space="training", n_cal=40, n_boot_cal=5, seed=7,
                          checkpoints=cf.checkpoint_hashes(cfg, networks))


def test_round_trip_and_the_networks_it_was_made_with(cfg, tmp_path):
    networks = [tmp_path / "trained_models_sigma44" / "Nmax" / f"replica_{r}_best.pth" for r in range(2)]
    for r, path in enumerate(networks):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(bytes([r]) * 100)
    sigma = cfg["sigmas_gev"][0]
    written = calibration(cfg, networks)
    path = cf.write_calibration(cfg, sigma, written)
    assert path == tmp_path / "calibration" / "calibration_sigma44.h5"
    read = cf.read_calibration(cfg, sigma)
    for c in CENTRES:
        np.testing.assert_array_equal(read.Q[c], written.Q[c])
        np.testing.assert_array_equal(read.R[c], written.R[c])
    np.testing.assert_array_equal(read.S, written.S)
    assert (read.space, read.n_cal, read.n_boot_cal, read.seed) == ("training", 40, 5, 7)
    assert set(read.checkpoints) == {"trained_models_sigma44/Nmax/replica_0_best.pth",
                                     "trained_models_sigma44/Nmax/replica_1_best.pth"}
    cf.check_networks(cfg, read, networks)                     # the same networks: accepted
    networks[1].write_bytes(b"retrained")
    with pytest.raises(InputError, match="other networks.*replica_1_best.pth"):
        cf.check_networks(cfg, read, networks)
    with pytest.raises(InputError, match="other networks"):
        cf.check_networks(cfg, read, networks[:1])              # one network fewer


def test_missing_calibration_says_what_to_run(cfg):
    with pytest.raises(InputError, match="calibrate first.*calibrate_sigma.py --preset tiny"):
        cf.read_calibration(cfg, cfg["sigmas_gev"][0])


def test_networks_in_a_linked_model_folder_are_named_relative_to_the_root(tmp_path):
    """A model folder that is a link to storage elsewhere: the networks keep their names under --root."""
    elsewhere = tmp_path / "scratch" / "models44"
    (elsewhere / "Nmax").mkdir(parents=True)
    (elsewhere / "Nmax" / "replica_0_best.pth").write_bytes(b"net")
    root = tmp_path / "root"
    root.mkdir()
    (root / "trained_models_sigma44").symlink_to(elsewhere, target_is_directory=True)
    cfg = load_config("tiny", [], root)
    hashes = cf.checkpoint_hashes(cfg, [cfg.checkpoint(0.44, "Nmax", 0)])
    assert list(hashes) == ["trained_models_sigma44/Nmax/replica_0_best.pth"]
