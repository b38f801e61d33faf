"""The error budget of method §8 on synthetic prediction arrays whose answers are known."""
import numpy as np
import pytest
from scipy.special import erf

import budget as bud

N_BOOT, N_R, N_E = 400, 5, 7


def rng(seed=0):
    return np.random.default_rng(seed)


def audience(base, **shifts):
    """Four ensembles equal to ``base`` [b, r, E], each Nref_X shifted by shifts.get(X, 0)."""
    return {"Nmax": base, "Nref_b": base + shifts.get("b", 0.0), "Nref_rho": base + shifts.get("rho", 0.0),
            "Nref_n": base + shifts.get("n", 0.0)}


def test_no_spread_gives_zero_stat_and_rep():
    P = np.broadcast_to(np.linspace(0, 1, N_E), (N_BOOT, N_R, N_E)).copy()
    b = bud.error_budget(audience(P))
    np.testing.assert_allclose(b.central, np.linspace(0, 1, N_E), rtol=1e-13)
    for name in ("stat", "rep", "sys_b", "sys_rho", "sys_n", "total"):
        np.testing.assert_allclose(b.component(name), 0.0, rtol=0, atol=1e-13)   # round-off of means
    assert b.warnings == []


def test_stat_and_rep_are_the_stated_standard_deviations():
    a = rng(1).normal(size=(N_BOOT, 1, N_E))          # per sample, the same for every replica
    c = rng(2).normal(size=(1, N_R, N_E))             # per replica, the same for every sample
    P = 3.0 + a + c
    np.testing.assert_allclose(bud.stat_error(P), np.std(a[:, 0], axis=0, ddof=1), rtol=1e-12)
    np.testing.assert_allclose(bud.replica_error(P), np.std(c[0], axis=0, ddof=1), rtol=1e-12)
    np.testing.assert_allclose(bud.central_value(P), 3.0 + a.mean(axis=(0, 1)) + c.mean(axis=(0, 1)), rtol=1e-12)


def test_offset_far_above_noise_gives_the_offset():
    """Two ensembles differing by a constant far above their noise: Σ_X = |Δ_X| = the constant."""
    noise = 1e-3 * rng(3).normal(size=(N_BOOT, N_R, N_E))
    P = 1.0 + noise
    preds = audience(P, b=0.5, rho=-0.2, n=0.0)
    preds["Nref_b"] = preds["Nref_b"] + 1e-3 * rng(4).normal(size=P.shape)   # its own noise too
    b = bud.error_budget(preds)
    np.testing.assert_allclose(b.sys_b, 0.5, atol=5e-4)        # Δ within its noise of 0.5
    np.testing.assert_allclose(b.sys_b, np.abs(b.deltas["sys_b"]), rtol=1e-12)   # erf(≫1) = 1
    np.testing.assert_allclose(b.sys_rho, 0.2, rtol=1e-12)     # same noise: Δ exactly -0.2
    np.testing.assert_array_equal(b.sys_n, 0.0)                # identical ensembles
    expected = np.sqrt(b.stat**2 + b.rep**2 + b.sys_b**2 + b.sys_rho**2)
    np.testing.assert_allclose(b.total, expected, rtol=1e-12)


def test_identical_ensembles_give_zero_systematics():
    P = rng(5).normal(size=(N_BOOT, N_R, N_E))
    b = bud.error_budget(audience(P))
    for name in bud.SYSTEMATICS:
        np.testing.assert_array_equal(b.component(name), 0.0)
    np.testing.assert_allclose(b.total, np.sqrt(b.stat**2 + b.rep**2), rtol=1e-12)
    assert np.all(b.stat > 0) and np.all(b.rep > 0)


def test_difference_error_uses_the_shared_samples():
    """Ensembles that follow the same sample-to-sample fluctuation: those cancel in σ_Δ, which is
    then only the replica spreads -- far below either ensemble's σ_stat."""
    f = rng(6).normal(size=(N_BOOT, 1, N_E))             # the input samples' effect, shared
    rep_max = 0.01 * rng(7).normal(size=(1, N_R, N_E))
    rep_ref = 0.02 * rng(8).normal(size=(1, N_R, N_E))
    P_max, P_ref = f + rep_max, f + rep_ref + 0.03
    sigma_delta = bud.difference_error(P_max, P_ref)
    expected = np.sqrt(bud.replica_error(P_max) ** 2 + bud.replica_error(P_ref) ** 2)
    np.testing.assert_allclose(sigma_delta, expected, rtol=1e-9)
    assert np.all(sigma_delta < 0.2 * bud.stat_error(P_max))


def test_systematic_formula_limits_and_monte_carlo():
    assert bud.systematic(np.array([0.0]), np.array([0.0]))[0] == 0.0           # Δ = 0
    assert bud.systematic(np.array([-0.3]), np.array([0.0]))[0] == 0.3          # σ_Δ = 0: |Δ|
    assert np.isnan(bud.systematic(np.array([0.3]), np.array([np.nan]))[0])     # unknown stays unknown
    # erf(|Δ|/(√2 σ)) is the probability that a N(0, σ²) fluctuation is smaller than |Δ|
    delta, sigma = np.array([0.05, 0.1, 0.25, -0.4]), 0.2
    z = sigma * rng(9).standard_normal(400_000)
    mc = np.abs(delta) * np.array([np.mean(np.abs(z) < abs(d)) for d in delta])
    # binomial error of each probability: sqrt(p(1-p)/4e5) < 8e-4
    np.testing.assert_allclose(bud.systematic(delta, np.full(4, sigma)) / np.abs(delta), mc / np.abs(delta),
                               rtol=0, atol=3e-3)
    np.testing.assert_allclose(bud.systematic(delta, np.full(4, sigma)),
                               np.abs(delta) * erf(np.abs(delta) / (np.sqrt(2) * sigma)), rtol=1e-14)


def test_bootstrap_std_estimates_the_input_error():
    """Predictions linear in a N(0, s²) input: σ_stat ≈ s·|slope| (statistically, N = 4000)."""
    x = 0.7 * rng(10).standard_normal((4000, 1, 1))
    slopes = np.linspace(-2, 2, N_E)
    P = np.broadcast_to(x * slopes, (4000, 2, N_E))
    np.testing.assert_allclose(bud.stat_error(P), 0.7 * np.abs(slopes), rtol=0.05)


def test_jackknife_error_of_a_mean_is_the_standard_error():
    """Jackknife samples of the mean of N data: the jackknife formula gives std(x, ddof=1)/√N
    exactly (a bootstrap-style std of the same samples would be N-1 times too small)."""
    x = rng(11).normal(size=(50, N_E))
    n = len(x)
    jackknife = (x.sum(axis=0) - x) / (n - 1)            # leave-one-out means
    P = np.repeat(jackknife[:, None, :], N_R, axis=1)
    expected = np.std(x, axis=0, ddof=1) / np.sqrt(n)
    np.testing.assert_allclose(bud.stat_error(P, kind="jackknife"), expected, rtol=1e-12)
    np.testing.assert_allclose(bud.stat_error(P, kind="bootstrap") * np.sqrt((n - 1) * (n - 1) / n),
                               expected, rtol=1e-12)
    b = bud.error_budget(audience(P), kind="jackknife")
    np.testing.assert_allclose(b.stat, expected, rtol=1e-12)


def test_missing_reference_ensemble_is_nan_with_a_warning():
    P = rng(12).normal(size=(N_BOOT, N_R, N_E))
    preds = audience(P, rho=0.1)
    preds["Nref_b"] = None
    b = bud.error_budget(preds)
    assert np.all(np.isnan(b.sys_b)) and np.all(np.isnan(b.total))
    assert np.all(np.isfinite(b.sys_rho)) and np.all(np.isfinite(b.sys_n))
    assert any("Nref_b is missing" in w and "sys_b" in w for w in b.warnings)
    np.testing.assert_allclose(b.total_known, np.sqrt(b.stat**2 + b.rep**2 + b.sys_rho**2 + b.sys_n**2))


def test_single_replica_has_undefined_spread():
    P = rng(13).normal(size=(N_BOOT, 1, N_E))
    b = bud.error_budget(audience(P))
    assert np.all(np.isnan(b.rep)) and np.all(np.isnan(b.total))
    assert any("1 replica" in w for w in b.warnings)


def test_bad_inputs():
    P = np.zeros((N_BOOT, N_R, N_E))
    with pytest.raises(ValueError, match="no predictions of Nmax"):
        bud.error_budget({"Nmax": None, "Nref_b": P})
    with pytest.raises(ValueError, match="disagree in N_boot or N_E"):
        bud.error_budget({"Nmax": P, "Nref_b": P[:10]})
    with pytest.raises(ValueError, match=r"expected \[N_boot, N_r, N_E\]"):
        bud.error_budget({"Nmax": P[:, 0]})
    with pytest.raises(ValueError, match="sample kind 'delete-2'"):
        bud.error_budget({"Nmax": P}, kind="delete-2")
    with pytest.raises(ValueError, match="at least 2"):
        bud.error_budget({"Nmax": P[:1]})


# --- the prior systematic (method §8, "Beyond the paper") ----------------------------------------
def test_prior_ensemble_equal_to_nmax_gives_zero_sys_prior_and_unchanged_total():
    P = rng(20).normal(size=(N_BOOT, N_R, N_E))
    preds = audience(P, b=0.3, rho=-0.1)
    without = bud.error_budget(preds)
    b = bud.error_budget(dict(preds, Nref_prior=P.copy()))
    assert b.has_prior and not without.has_prior and without.sys_prior is None
    np.testing.assert_array_equal(b.sys_prior, 0.0)
    np.testing.assert_array_equal(b.total_with_prior, b.total)
    np.testing.assert_array_equal(b.total, without.total)      # the paper's σ_tot is untouched
    assert np.all(b.total > 0)


def test_prior_offset_far_above_noise_adds_in_quadrature():
    noise = 1e-3 * rng(21).normal(size=(N_BOOT, N_R, N_E))
    P = 1.0 + noise
    preds = audience(P, b=0.5)
    b = bud.error_budget(dict(preds, Nref_prior=P - 0.4))
    np.testing.assert_allclose(b.deltas["sys_prior"], 0.4, rtol=1e-12)
    np.testing.assert_allclose(b.sys_prior, 0.4, rtol=1e-12)              # erf(≫1) = 1
    np.testing.assert_allclose(b.total, bud.error_budget(preds).total, rtol=0)
    np.testing.assert_allclose(b.total_with_prior, np.sqrt(b.total**2 + 0.16), rtol=1e-12)


def test_missing_prior_ensemble_is_nan_never_zero():
    P = rng(22).normal(size=(N_BOOT, N_R, N_E))
    b = bud.error_budget(dict(audience(P), Nref_prior=None))
    assert np.all(np.isnan(b.sys_prior)) and np.all(np.isnan(b.total_with_prior))
    assert np.all(np.isfinite(b.total))
    assert any("Nref_prior is missing" in w and "σ_tot,prior" in w for w in b.warnings)


def test_an_unmeasured_systematic_is_nan_outside_sigma_tot_and_said():
    """Nref_b trained on Nmax's own file (the physical space has no N_b): its difference is seed noise,
    here made large; unmeasured, Σ_b is NaN (never zero), σ_tot is the sum of the others and the
    covariance's diagonal still σ_tot²."""
    import covariance as cv
    P = 1.0 + 1e-3 * rng(6).normal(size=(N_BOOT, N_R, N_E))
    preds = audience(P, b=0.5, rho=-0.2)
    b = bud.error_budget(preds, unmeasured=("sys_b",))
    assert np.all(np.isnan(b.sys_b)) and b.unmeasured == ("sys_b",)
    np.testing.assert_allclose(b.total, np.sqrt(b.stat**2 + b.rep**2 + b.sys_rho**2 + b.sys_n**2), rtol=1e-12)
    assert any("sys_b" in w and "not measured" in w and "not part of σ_tot" in w for w in b.warnings)
    np.testing.assert_allclose(np.diag(cv.result_covariances(preds, b)["total"]), b.total**2, rtol=1e-10)
    measured = bud.error_budget(preds)
    assert np.all(measured.total > b.total)                     # the seed noise Σ_b no longer inflates it


@pytest.mark.parametrize("space,unmeasured", [("chebyshev", ()), ("mixture", ()), ("physical", ("sys_b",))])
def test_which_systematics_a_training_space_cannot_measure(tmp_path, space, unmeasured):
    """P has no N_b: Nref_b's file is Nmax's there; the mixture's Chebyshev half has N_b."""
    from config import load_config
    from tasks import unmeasured_systematics
    cfg = load_config("demo", [f"space={space}"], tmp_path)
    assert unmeasured_systematics(cfg) == unmeasured
    cfg = load_config("demo", [f"space={space}", "ensembles.Nref_rho.nrho=8000"], tmp_path)
    assert "sys_rho" in unmeasured_systematics(cfg)              # a Nref_rho equal to Nmax measures nothing
