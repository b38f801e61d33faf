"""Split-conformal calibration and the scores that judge an error, on oracles with known answers."""
import numpy as np
import pytest
from scipy import stats

import calibration as cal
import closure

N_CAL, N_TEST, N_E = 2000, 4000, 6


def oracle(n, seed, scale=1.0, shift=0.0):
    """Truths y, an oracle centre c = y + scale·w·z (z ~ N(0, 1)) + shift, and its claimed width w:
    honest for scale = 1, shift = 0."""
    g = np.random.default_rng(seed)
    y = g.normal(size=(n, N_E))
    w = np.exp(g.normal(size=(n, N_E)) * 0.5)          # input-dependent widths
    return y, y + scale * w * g.normal(size=(n, N_E)) + shift, w


def binomial_error(n, p=cal.COVERAGE):
    return np.sqrt(p * (1 - p) / n)


def test_conformal_rank_is_the_stated_order_statistic():
    assert cal.conformal_rank(99) == 69          # ⌈100 · 0.6827⌉
    scores = np.arange(1, 100)[::-1, None] * np.ones((1, 3))   # 99..1 at every energy
    np.testing.assert_array_equal(cal.conformal_factor(scores), 69.0)
    assert np.all(np.isinf(cal.conformal_factor(np.ones((1, 2)))))   # rank 2 > 1 item
    with pytest.raises(ValueError, match="NaN"):
        cal.conformal_factor(np.array([[np.nan]]))


def test_an_honest_oracle_covers_68_percent_and_needs_q_near_one():
    y, c, w = oracle(N_CAL, 1)
    Q = cal.conformal_factor(cal.scores(c, y, w))
    np.testing.assert_allclose(Q, 1.0, atol=0.06)         # the Gaussian's own 68.27 % quantile of |z|
    y2, c2, w2 = oracle(N_TEST, 2)
    covered = np.abs(c2 - y2) <= Q * w2
    per_energy = covered.mean(axis=0)
    assert np.all(np.abs(per_energy - cal.COVERAGE) < 4 * binomial_error(N_TEST) + 1 / (N_CAL + 1))
    assert abs(covered.mean() - cal.COVERAGE) < 3 * binomial_error(N_TEST * N_E) + 0.01


@pytest.mark.parametrize("scale", [0.4, 2.5])
def test_a_mis_scaled_oracle_is_corrected_by_q(scale):
    """Widths that claim too much or too little: uncorrected coverage is far from 68 %, Q = scale
    fixes it on new items of the same space."""
    y, c, w = oracle(N_CAL, 3, scale)
    Q = cal.conformal_factor(cal.scores(c, y, w))
    np.testing.assert_allclose(Q, scale, rtol=0.07)
    y2, c2, w2 = oracle(N_TEST, 4, scale)
    raw = (np.abs(c2 - y2) <= w2).mean()
    assert abs(raw - cal.COVERAGE) > 0.2
    fixed = (np.abs(c2 - y2) <= Q * w2).mean()
    assert abs(fixed - cal.COVERAGE) < 3 * binomial_error(N_TEST * N_E) + 0.02


def test_calibrated_total_adds_systematics_in_quadrature():
    post = np.array([3.0, 1.0])
    np.testing.assert_allclose(cal.calibrated_total(post, [np.array([4.0, 0.0])]), [5.0, 1.0])
    np.testing.assert_array_equal(cal.calibrated_total(post, []), post)
    np.testing.assert_allclose(cal.half_width([0.0, 1.0], [2.0, 5.0]), [1.0, 2.0])


def test_crps_pit_and_sharpness_tell_honest_from_wrong_errors():
    y, c, w = oracle(N_TEST, 5)
    honest, too_small, too_large = (closure.crps(c, y, k * w) for k in (1.0, 0.3, 3.0))
    assert honest < too_small and honest < too_large
    # the CRPS of N(μ, σ²) at y, closed form (Gneiting & Raftery 2007), at one point
    z = (y[0, 0] - c[0, 0]) / w[0, 0]
    closed = w[0, 0] * (z * (2 * stats.norm.cdf(z) - 1) + 2 * stats.norm.pdf(z) - 1 / np.sqrt(np.pi))
    assert closure.crps(c[:1, :1], y[:1, :1], w[:1, :1]) == pytest.approx(closed, rel=1e-10)
    assert stats.kstest(closure.pit(c, y, w).ravel(), "uniform").pvalue > 1e-3
    assert stats.kstest(closure.pit(c, y, 0.5 * w).ravel(), "uniform").pvalue < 1e-6
    assert closure.sharpness(2 * w, y) == pytest.approx(2 * closure.sharpness(w, y))


def test_error_figures_are_closure_pys_own():
    """closure.error_figures: every figure of ERROR_FIGURES, each equal to its own function's."""
    y, c, w = oracle(200, 6)
    groups = np.repeat(np.arange(100), 2)
    figures = closure.error_figures(c, y, w, groups)
    assert tuple(figures) == closure.ERROR_FIGURES
    stats_ = closure.closure_statistics(c, y, w, groups)
    assert (figures["coverage"], figures["coverage_err"]) == closure.coverage(c, y, w, groups)
    assert figures["mean_abs_pull"] == stats_.mean_abs_pull and figures["r_bv"] == stats_.r_bv
    assert figures["crps"] == closure.crps(c, y, w) and figures["sharpness"] == closure.sharpness(w, y)


def test_calibration_stream_is_its_own_and_an_overlapping_one_is_refused(tiny_cfg, monkeypatch):
    """The calibration set is drawn from a stream no training file uses: its densities are none of the
    interval networks' training file's, and a calibration stream that is a training stream is refused."""
    import calibrate_sigma
    from tasks import ensemble_space
    from training_sets import TRAINING_PURPOSES, check_own_stream, clean_block
    nb = tiny_cfg["ensembles"]["Nmax"]["nb"]
    space = ensemble_space(tiny_cfg, "Nmax_interval")
    assert space == "mixture"                                     # the default calibration space
    drawn = calibrate_sigma.calibration_set(tiny_cfg)
    assert drawn.correlators.shape == (tiny_cfg["n_cal"], tiny_cfg.n_t)
    training = clean_block(tiny_cfg, nb, 0, space)[1]           # the training file's first block
    assert not np.any(np.all(np.isclose(drawn.correlators[:, None], training[None], rtol=1e-12), axis=-1))
    for purpose in TRAINING_PURPOSES:
        with pytest.raises(ValueError, match="one of the training files' streams"):
            check_own_stream(purpose)
        monkeypatch.setattr(calibrate_sigma, "CALIBRATION_STREAM", purpose)
        with pytest.raises(ValueError, match=f"random stream '{purpose}' is one of the training files' streams"):
            calibrate_sigma.calibration_set(tiny_cfg)


def two_kinds(n, seed):
    """Items of two kinds, told apart by the relative width σ_tot / max|ρ̄| the user sees: narrow
    (relative width ≤ 0.05) whose σ_tot is honest, wide (≥ 0.2) whose σ_tot claims 2.5 times too
    much.  Returns the audience's items {central, total} and the truths."""
    g = np.random.default_rng(seed)
    wide = np.arange(n) % 2 == 0                        # exactly half each: the median edge lies between them
    relative = np.where(wide, g.uniform(0.2, 0.3, n), g.uniform(0.01, 0.05, n))[:, None] * np.ones((1, N_E))
    central = np.ones((n, N_E)) + 0.05 * g.normal(size=(n, N_E))
    total = relative * np.abs(central).max(axis=1, keepdims=True)
    truth = central + np.where(wide[:, None], 0.4, 1.0) * total * g.normal(size=(n, N_E))
    return {"central": central, "total": total}, truth, wide


def test_the_audience_centre_per_bin_corrects_each_kind_where_one_factor_cannot():
    """Mondrian conformal on the audience centre: one factor per energy covers 68 % on average but
    over-covers one kind and under-covers the other; per bin of the relative width each kind gets its
    own factor (0.4 and 1.0, the Gaussian's 68.27 % quantile of |z| times the true scale) and covers
    68 % on new items."""
    items, truth, _ = two_kinds(N_CAL, 5)
    assert cal.bins_for(N_CAL, 4) == 4 and cal.bins_for(N_CAL, 40) == N_CAL // cal.MIN_BIN_ITEMS
    assert cal.bins_for(150, 4) == 1                                # too few items: the marginal factor
    one = cal.calibrate(items, truth, ("audience",), 1)[0]["audience"]
    factors, S = cal.calibrate(items, truth, ("audience",), 2)
    f = factors["audience"]
    assert f.Q.shape == (2, N_E) and f.edges.shape == (1, N_E)
    assert np.all((f.edges > 0.05) & (f.edges < 0.2))               # the edge falls between the kinds
    np.testing.assert_allclose(f.Q[0], 1.0, rtol=0.1)                # narrow: honest
    np.testing.assert_allclose(f.Q[1], 0.4, rtol=0.1)                # wide: 2.5 times too wide
    np.testing.assert_allclose(S, cal.conformal_factor(cal.scores(items["central"], truth, items["total"])))
    new, truth2, wide = two_kinds(N_TEST, 6)
    feature = cal.condition_feature(new["central"], new["total"])
    for factor, spread in ((one.at(feature), 0.1), (f.at(feature), None)):
        covered = np.abs(new["central"] - truth2) <= factor * new["total"]
        for kind in (wide, ~wide):
            off = abs(covered[kind].mean() - cal.COVERAGE)
            if spread is None:
                assert off < 4 * binomial_error(kind.sum() * N_E) + 0.02
            else:
                assert off > spread                                  # one factor misses each kind


def test_bins_have_equal_counts_and_an_item_on_an_edge_goes_below():
    feature = np.arange(1.0, 401.0)[:, None] * np.ones((1, 3))
    edges = cal.bin_edges(feature, 4)
    bins = cal.bin_of(feature, edges)
    assert [int(np.sum(bins[:, 0] == j)) for j in range(4)] == [100] * 4
    np.testing.assert_array_equal(cal.bin_of(edges[1:2], edges), [[1, 1, 1]])
    f = cal.Factors(np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]), np.array([[0.5, 0.5, 0.5]]), None, None)
    np.testing.assert_array_equal(f.at(np.array([[0.1, 0.9, 0.5]])), [[1.0, 5.0, 3.0]])


def test_the_audience_centres_result_is_its_factor_times_sigma_tot():
    from budget import Budget
    n = 5
    g = np.random.default_rng(7)
    b = Budget(central=g.uniform(1, 2, n), stat=np.full(n, 0.1), rep=np.full(n, 0.1), sys_b=np.zeros(n),
               sys_rho=np.zeros(n), sys_n=np.zeros(n), total=g.uniform(0.1, 0.3, n))
    f = cal.Factors(np.array([[1.5] * n, [0.5] * n]), np.full((1, n), 0.1), np.eye(n), np.full(n, 0.7))
    r = cal.calibrated_results({"audience": f}, b)["audience"]
    relative = b.total / b.central.max()
    np.testing.assert_array_equal(r["central_calibrated"], b.central)
    np.testing.assert_allclose(r["total_calibrated"], np.where(relative > 0.1, 0.5, 1.5) * b.total)
    np.testing.assert_array_equal(r["post"], r["total_calibrated"])
    cov = cal.calibrated_covariances({"audience": r}, {"audience": f}, b)["audience"]
    np.testing.assert_allclose(np.sqrt(np.diag(cov)), r["total_calibrated"])
