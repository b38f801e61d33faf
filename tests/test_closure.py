"""The closure test itself is tested (issue 9, method §8-9).

- Level-1 measurements (closure.closure_samples, prediction.mock_inputs): the mean of the samples
  minus the exact C is one noise draw, not 1/√N_boot of one; same seed, same measurement;
  repetitions are independent draws; level 0 stays around the exact C.
- The statistics (closure.py) against oracle audiences whose honesty is known by construction:
  synthetic predictions = truth + a level-1 offset shared by every sample, replica and ensemble of
  one measurement + per-sample noise of the same σ (what a linear estimator does with measured
  data) + small per-(sample, replica) noise, fed through budget.error_budget.  An honest oracle
  covers 68 % within its statistical error with R_bv ≈ 1; a biased one is flagged with the coverage
  and R_bv that Gaussian integrals give; the level-0 version of the honest oracle over-covers; an
  estimator that ignores its input and returns the truth shifted by a fixed amount is never honest.
"""
import numpy as np
import pytest
from scipy.stats import norm

import budget as bud
import closure
from config import ConfigError, load_config
from noise_files import load_noise_file
from prediction import mock_inputs
from sigma_model_utils import rng_for

N_E, N_BOOT, N_R = 47, 200, 3
HONEST = closure.HONEST_COVERAGE


# --- measurements --------------------------------------------------------------------------------
def whitened(offset, noise, scale):
    """z with offset = s L z."""
    return np.linalg.solve(noise.chol, offset / scale)


def test_level1_sample_mean_is_one_measurement_away_from_the_truth(tiny_cfg):
    cfg = load_config("tiny", tiny_cfg.overrides + ["n_boot=400"], tiny_cfg.root)
    noise = load_noise_file(cfg.input_path(cfg["noise_file"]), cfg)
    n_t = cfg.n_t
    for level, lo, hi in ((1, 0.4, 2.0), (0, 0.0, 0.02)):
        chi2 = []
        for rep in range(6):
            c = load_config("tiny", cfg.overrides + [f"closure_level={level}", f"closure_repetition={rep}"], cfg.root)
            x = mock_inputs(c, "O3")
            scale = x.clean[0] / noise.mean[0]
            z = whitened(x.samples.mean(axis=0) - x.clean, noise, scale)
            chi2.append(float(z @ z) / n_t)      # E = 1 + 1/N_boot at level 1, 1/N_boot at level 0
            assert x.closure_level == level and x.source["closure"] == closure.level_label(level)
            np.testing.assert_allclose(x.samples.mean(axis=0), x.measured,
                                       atol=5 * scale * np.sqrt(noise.cov.diagonal().max() / 400))
        assert lo < np.mean(chi2) < hi, (level, chi2)
    # level 0: the measurement is the exact correlator; level 1: same z_b, shifted by s L z0
    c0 = mock_inputs(load_config("tiny", cfg.overrides + ["closure_level=0"], cfg.root), "O3")
    c1 = mock_inputs(cfg, "O3")
    np.testing.assert_array_equal(c0.measured, c0.clean)
    np.testing.assert_allclose(c1.samples - c0.samples, np.broadcast_to(c1.measured - c1.clean, c1.samples.shape),
                               rtol=0, atol=1e-12 * np.abs(c1.clean).max())


def test_measurements_are_seeded_and_repetitions_independent(tiny_cfg):
    noise = load_noise_file(tiny_cfg.input_path(tiny_cfg["noise_file"]), tiny_cfg)
    clean = mock_inputs(tiny_cfg, "O3").clean
    scale = clean[0] / noise.mean[0]

    def z0(rep, seed=tiny_cfg["seed"]):
        c = load_config("tiny", tiny_cfg.overrides + [f"seed={seed}"], tiny_cfg.root)
        _, measured = closure.closure_samples(clean, noise, 1, rng_for(c, "measurement", 0, rep),
                                              rng_for(c, "bootstrap", 0, rep), 2)
        return whitened(measured - clean, noise, scale)

    first, again = mock_inputs(tiny_cfg, "O3"), mock_inputs(tiny_cfg, "O3")      # same seed, same measurement
    np.testing.assert_array_equal(first.measured, again.measured)
    np.testing.assert_array_equal(first.samples, again.samples)
    np.testing.assert_allclose(whitened(first.measured - clean, noise, scale), z0(0), rtol=1e-10)
    np.testing.assert_array_equal(z0(3), z0(3))
    assert not np.allclose(z0(3), z0(3, seed=tiny_cfg["seed"] + 1))
    z = np.stack([z0(r) for r in range(60)])          # [repetitions, n_t]: should be iid N(0, 1)
    n = z.size
    assert abs(z.mean()) < 5 / np.sqrt(n) and abs(z.var() - 1) < 5 * np.sqrt(2 / n)
    lag = np.mean(z[1:] * z[:-1])                      # neighbouring repetitions uncorrelated
    assert abs(lag) < 5 / np.sqrt(z[1:].size)
    with pytest.raises(ValueError, match="closure level"):
        closure.closure_samples(clean, noise, 2, None, None, 2)


def test_closure_level_and_repetition_are_checked(tiny_cfg):
    for bad in ("closure_level=2", "closure_repetition=-1", "closure_repetition=0.5"):
        with pytest.raises(ConfigError, match=bad.split("=")[0]):
            load_config("tiny", [bad], tiny_cfg.root)
    assert load_config("tiny", [], tiny_cfg.root)["closure_level"] == 1      # level 1 is the default


# --- the statistics on oracle audiences ----------------------------------------------------------------
def correlated(rng, n, length=5.0):
    """n Gaussian vectors over the energy grid, unit variance, correlation exp(-(Δk/length)²/2):
    neighbouring energies strongly correlated, as in a reconstruction."""
    k = np.arange(N_E)
    corr = np.exp(-0.5 * ((k[:, None] - k[None, :]) / length) ** 2) + 1e-9 * np.eye(N_E)
    return rng.standard_normal((n, N_E)) @ np.linalg.cholesky(corr).T


def oracle_rows(seed, n_densities=60, n_meas=3, bias=0.0, level=1, sigma=0.05, eps=0.1):
    """(central, truth, σ_tot, groups) of an oracle audience, through budget.error_budget.

    Every ensemble predicts truth + bias + σ (z0 + z_b) + eps σ ξ_{b,r}: z0 the measurement's offset
    (absent at level 0), z_b the noise of sample b (the same samples feed every ensemble), ξ the
    networks' own scatter.  The central value then errs by σ z0 (+ O(σ/√N_boot)) and σ_tot ≈ σ:
    honest errors when bias = 0 at level 1."""
    rng = np.random.default_rng(seed)
    central, truth, total, groups = [], [], [], []
    for i in range(n_densities):
        t = 1.0 + 0.5 * correlated(rng, 1)[0]
        for _ in range(n_meas):
            z0 = correlated(rng, 1)[0] if level == 1 else np.zeros(N_E)
            base = t + bias * sigma + sigma * (z0 + correlated(rng, N_BOOT))        # [N_boot, N_E]
            P = {ens: base[:, None, :] + eps * sigma * rng.standard_normal((N_BOOT, N_R, N_E))
                 for ens in ("Nmax", *bud.SYSTEMATICS.values())}
            b = bud.error_budget(P)
            central.append(b.central), truth.append(t), total.append(b.total), groups.append(i)
    return np.array(central), np.array(truth), np.array(total), np.array(groups)


def test_honest_oracle_covers_68_percent_with_r_bv_one():
    central, truth, total, groups = oracle_rows(1)
    s = closure.closure_statistics(central, truth, total, groups)
    assert s.n_groups == 60 and s.n_rows == 180
    assert 0.003 < s.coverage_err < 0.04 and s.r_bv_err < 0.06          # the test has power
    assert abs(s.coverage - HONEST) < 3 * s.coverage_err
    assert abs(s.r_bv - 1) < 3 * s.r_bv_err
    assert abs(s.mean_abs_pull - closure.HONEST_MEAN_ABS_PULL) < 0.05
    assert s.verdict == "honest"
    assert np.all(np.abs(s.coverage_vs_energy - HONEST) < 5 * s.coverage_vs_energy_err)


def test_biased_oracle_is_flagged_with_the_gaussian_figures():
    b = 1.5                                  # a bias of 1.5 σ at every energy
    central, truth, total, groups = oracle_rows(2, bias=b)
    s = closure.closure_statistics(central, truth, total, groups)
    expected = norm.cdf(1 - b) - norm.cdf(-1 - b)        # P(|N(b, 1)| ≤ 1) = 0.30
    assert abs(s.coverage - expected) < 3 * s.coverage_err + 0.01
    assert abs(s.r_bv - np.sqrt(1 + b**2)) < 3 * s.r_bv_err + 0.02  # sqrt(E (b + z)²) = sqrt(1 + b²)
    assert s.coverage + 5 * s.coverage_err < HONEST and s.r_bv - 5 * s.r_bv_err > 1
    assert "errors too small" in s.verdict


def test_level0_makes_the_honest_oracle_over_cover():
    """What the level-0 diagnostic hides: without the measurement's offset the same oracle covers
    nearly everything and R_bv ≈ 1/√N_boot."""
    central, truth, total, groups = oracle_rows(3, level=0, n_densities=20)
    s = closure.closure_statistics(central, truth, total, groups)
    assert s.coverage > 0.99 and s.r_bv < 3 / np.sqrt(N_BOOT)
    assert "errors too large" in s.verdict


def test_an_estimator_that_ignores_its_input_never_looks_honest():
    """truth + a fixed shift, whatever the samples: with identical replicas σ_tot = 0; with replica
    offsets tuned so that the pooled coverage is 32/47 = 68 % and R_bv exactly 1, the coverage
    never fluctuates and is 0 or 1 at each energy."""
    rng = np.random.default_rng(4)
    shift = 0.1
    truth = 1.0 + 0.5 * correlated(rng, 30)
    # σ_tot = shift · ratio: covered where ratio ≥ 1 (32 energies), and mean 1/ratio² = 1 (R_bv = 1)
    ratio = np.where(np.arange(N_E) < 32, 1.05, 1 / np.sqrt((N_E - 32 / 1.05**2) / 15))
    for spread in (np.zeros(N_E), shift * ratio):
        central, total = [], []
        for t in truth:
            for _ in range(3):
                offsets = np.array([-1.0, 0.0, 1.0])[:, None] * spread        # std_r = spread (ddof 1)
                P = np.broadcast_to(t + shift + offsets, (N_BOOT, N_R, N_E))
                b = bud.error_budget({ens: P for ens in ("Nmax", *bud.SYSTEMATICS.values())})
                central.append(b.central), total.append(b.total)
        s = closure.closure_statistics(np.array(central), np.repeat(truth, 3, axis=0), np.array(total),
                                       np.repeat(np.arange(30), 3))
        assert s.verdict != "honest"
        if spread.any():
            assert s.coverage == pytest.approx(32 / N_E) and s.r_bv == pytest.approx(1.0)
            assert "coverage off at some energies" in s.verdict
        else:
            assert s.coverage == 0.0 and "errors too small" in s.verdict


def test_statistics_known_answers():
    """Two groups of two rows, errors 1: coverage from counts, R_bv from the definitions."""
    truth = np.zeros((4, 2))
    central = np.array([[0.5, 2.0], [0.5, 0.5], [3.0, 3.0], [0.0, 1.0]])
    groups = np.array([0, 0, 1, 1])
    cov, err = closure.coverage(central, truth, 1.0, groups)
    assert cov == pytest.approx(5 / 8)
    per_group = np.array([3 / 4, 2 / 4])
    assert err == pytest.approx(per_group.std(ddof=1) / np.sqrt(2))
    r, r_err = closure.bias_variance_ratio(central, truth, np.ones((4, 2)), groups)
    assert r == pytest.approx(np.sqrt(np.mean(central**2)))
    leave_out = np.sqrt([np.mean(central[2:] ** 2), np.mean(central[:2] ** 2)])
    assert r_err == pytest.approx(np.sqrt(0.5 * np.sum((leave_out - leave_out.mean()) ** 2)))
    assert closure.mean_abs_pull(central, truth, 1.0) == pytest.approx(np.mean(central))
    per_energy, _ = closure.coverage_vs_energy(central, truth, 1.0, groups)
    np.testing.assert_allclose(per_energy, [(1 + 0.5) / 2, (0.5 + 0.5) / 2])
    single = closure.closure_statistics(central[0], truth[0], np.ones(2))
    assert single.n_groups == 1 and np.isnan(single.coverage_err) and single.verdict == "undetermined"
