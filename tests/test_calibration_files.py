"""The calibration file: written and read by its owner, bound to the networks it was made with,
checksummed and its values checked when read."""
import h5py
import numpy as np
import pytest

import calibration_files as cf
from benchmarks.bench_prediction import write_random_audience
from calibration import CENTRES, Factors
from config import load_config
from covariance import score_correlation
from io_utils import InputError


@pytest.fixture
def cfg(tmp_path):
    return load_config("tiny", [], tmp_path)


N_BINS = 4
BINS = {c: N_BINS if c == "audience" else 1 for c in CENTRES}


def calibration(cfg, networks):
    """Factors as calibrate_sigma.py makes them (the audience centre with N_BINS bins, the others with
    one); R the correlation of 16 items' scores at N_E = 47 energies, rank-deficient as the tiny
    preset's (eigenvalues 0 up to rounding)."""
    n_e = cfg["n_energies"]
    g = np.random.default_rng(0)
    factors = {c: Factors(g.uniform(0.5, 2, (BINS[c], n_e)), np.sort(g.uniform(0, 1, (BINS[c] - 1, n_e)), axis=0),
                          score_correlation(g.normal(size=(16, n_e)), np.zeros((16, n_e)), g.uniform(1, 2, (16, n_e))),
                          np.full(n_e, 0.7)) for c in CENTRES}
    return cf.Calibration(factors=factors, S=g.uniform(0.5, 2, n_e), n_bins=N_BINS, space="training", n_cal=40,
                          n_boot_cal=5, seed=7, checkpoints=cf.checkpoint_hashes(cfg, networks or []))


def test_round_trip_and_the_networks_it_was_made_with(cfg, tmp_path):
    write_random_audience(cfg, np.zeros(cfg.n_t), np.ones(cfg.n_t))
    networks = [tmp_path / "trained_models_sigma44" / "Nmax" / f"replica_{r}_best.pth" for r in range(2)]
    sigma = cfg["sigmas_gev"][0]
    written = calibration(cfg, networks)
    path = cf.write_calibration(cfg, sigma, written)
    assert path == tmp_path / "calibration" / "calibration_sigma44.h5"
    with h5py.File(path, "r") as h5:            # every dataset the reader checks, each checksummed
        keys = []
        h5.visititems(lambda key, obj: keys.append(key) if isinstance(obj, h5py.Dataset) else None)
        assert sorted(keys) == sorted(cf.datasets(cfg["n_energies"], CENTRES, BINS)) and all(
            h5[k].fletcher32 for k in keys)
        assert "edges/audience" in keys and "edges/median" not in keys
    read = cf.read_calibration(cfg, sigma)
    assert list(read.factors) == list(CENTRES)
    for c in CENTRES:
        for part in ("Q", "edges", "R", "coverage"):
            np.testing.assert_array_equal(getattr(read.factors[c], part), getattr(written.factors[c], part))
    np.testing.assert_array_equal(read.S, written.S)
    assert (read.n_bins, read.space, read.n_cal, read.n_boot_cal, read.seed) == (N_BINS, "training", 40, 5, 7)
    assert set(read.checkpoints) == {"trained_models_sigma44/Nmax/replica_0_best.pth",
                                     "trained_models_sigma44/Nmax/replica_1_best.pth"}
    cf.check_networks(cfg, read, networks)                     # the same networks: accepted
    original = networks[1].read_bytes()
    networks[1].write_bytes(original[:len(original) // 2])    # truncated: named with its training command
    with pytest.raises(InputError, match=r"replica_1_best.pth: unreadable .*its saved state: `python hpc_train_sigma"
                                         r".py --preset tiny --ensemble Nmax --replica 1 --sigma 0.44 --root "):
        cf.check_networks(cfg, read, networks)
    networks[1].write_bytes(cfg.checkpoint(0.44, "Nref_b", 1).read_bytes())      # another, readable network
    with pytest.raises(InputError, match="other networks.*replica_1_best.pth"):
        cf.check_networks(cfg, read, networks)
    with pytest.raises(InputError, match="other networks"):
        cf.check_networks(cfg, read, networks[:1])              # one network fewer


REMAKE = r"make it again with `python calibrate_sigma.py --preset tiny --sigma 0.44 --force --root "


def test_a_flipped_byte_is_detected_by_the_checksum_and_the_remedy_named(cfg):
    """A low mantissa byte of one factor: a believable wrong number without the checksum."""
    written = calibration(cfg, [])
    path = cf.write_calibration(cfg, 0.44, written)
    with h5py.File(path, "r") as h5:         # the stored bytes are the values, little-endian
        offset = h5["Q/median"].id.get_chunk_info(0).byte_offset
        stored = written.factors["median"].Q.astype("<f8").tobytes()
        assert h5["Q/median"].id.read_direct_chunk((0, 0))[1][:8 * 47] == stored
    data = bytearray(path.read_bytes())
    data[offset + 8 * 3] ^= 0x01             # the lowest byte of Q_median at the fourth energy:
    path.write_bytes(bytes(data))            # 1 part in 10^16 of a believable number
    with pytest.raises(InputError, match=r"calibration_sigma44.h5, key 'Q/median': damaged.*checksum.*" + REMAKE):
        cf.read_calibration(cfg, 0.44)


def without_checksums(path):
    """Rewrite the calibration file as files written before the checksums were (plain datasets)."""
    with h5py.File(path, "r") as old:
        values = {}
        old.visititems(lambda key, obj: values.update({key: obj[()]}) if isinstance(obj, h5py.Dataset) else None)
        attrs = dict(old.attrs)
    with h5py.File(path, "w") as h5:
        for key, data in values.items():
            h5[key] = data
        h5.attrs.update(attrs)
    return values


def test_a_file_without_checksums_is_read_and_its_values_still_checked(cfg):
    path = cf.write_calibration(cfg, 0.44, calibration(cfg, []))
    values = without_checksums(path)
    read = cf.read_calibration(cfg, 0.44)
    np.testing.assert_array_equal(read.factors["median"].Q, values["Q/median"])
    with h5py.File(path, "r+") as h5:
        h5["Q/median"][0, 3] = -h5["Q/median"][0, 3]
    with pytest.raises(InputError, match=r"key 'Q/median': -\d.* at index \[0, 3\] \(1 such value\); expected "
                                         r"positive finite values; " + REMAKE):
        cf.read_calibration(cfg, 0.44)


def _set(key, index, value):
    def damage(h5):
        h5[key][index] = value
    return damage


def _not_psd(h5):        # |R| <= 1, symmetric, unit diagonal, but no correlation matrix
    r = np.eye(h5["R/paper"].shape[0])
    r[:3, :3] = [[1, 0.9, 0.9], [0.9, 1, -0.9], [0.9, -0.9, 1]]
    assert np.linalg.eigvalsh(r).min() < -0.5
    h5["R/paper"][...] = r


@pytest.mark.parametrize("damage,key,problem", [
    (_set("Q/paper", (0, 0), 0.0), "Q/paper", r"0 at index \[0, 0\].*expected positive finite values"),
    (_set("Q/audience", (2, 7), -0.5), "Q/audience", r"-0.5 at index \[2, 7\].*expected positive finite values"),
    (_set("S", 5, -1.5), "S", r"-1.5 at index \[5\].*expected positive finite values"),
    (_set("Q/median", (0, 2), 1e308 * 10), "Q/median", "contains NaN or inf"),
    (_set("edges/audience", (0, 4), 10.0), "edges/audience", "edges out of order"),
    (_set("edges/audience", (1, 4), np.nan), "edges/audience", "contains NaN or inf"),
    (_set("R/median", (1, 2), 5.0), "R/median", "not symmetric, an entry of magnitude 5 > 1"),
    (_set("R/median", (4, 4), 0.5), "R/median", "a diagonal entry is not 1"),
    (_not_psd, "R/paper", "not positive semi-definite"),
    (_set("coverage/paper", 1, 1.5), "coverage/paper", r"1.5 at index \[1\].*expected shares in \[0, 1\]"),
])
def test_implausible_values_are_refused_naming_the_key(cfg, damage, key, problem):
    path = cf.write_calibration(cfg, 0.44, calibration(cfg, []))
    without_checksums(path)
    with h5py.File(path, "r+") as h5:
        damage(h5)
    with pytest.raises(InputError, match=f"calibration_sigma44.h5, key '{key}': {problem}.*" + REMAKE):
        cf.read_calibration(cfg, 0.44)


def test_a_file_of_the_earlier_layout_is_refused_with_the_remedy(cfg):
    """Before the audience centre: Q [N_E] per centre, no attribute ``centres``."""
    path = cf.write_calibration(cfg, 0.44, calibration(cfg, []))
    with h5py.File(path, "r+") as h5:
        del h5.attrs["centres"]
    with pytest.raises(InputError, match="earlier layout.*" + REMAKE):
        cf.read_calibration(cfg, 0.44)


def test_a_truncated_file_names_the_command_that_remakes_it(cfg):
    path = cf.write_calibration(cfg, 0.44, calibration(cfg, []))
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(InputError, match="not a readable HDF5 file.*" + REMAKE):
        cf.read_calibration(cfg, 0.44)


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
