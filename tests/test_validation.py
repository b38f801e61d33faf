"""The validation families (validation.py): exact correlators and smeared truths against
independent evaluations (closed forms, or Gauss-Legendre quadrature in other variables), the
seeded streams, and the family metrics of benchmarks/validate_coverage.py."""
from pathlib import Path

import numpy as np
import pytest
from scipy import integrate, special

import validation as val
from config import load_config
from sigma_model_utils import gaussian, kernel

REPO = Path(__file__).resolve().parents[1]


def cfg_with(tmp_path, *overrides):
    return load_config("tiny", [f"noise_file={REPO / 'data' / 'standin_baryon_T64.h5'}", *overrides], tmp_path)


def gauss_legendre(f, a, b, n_panels=400, order=20):
    """∫_a^b f by a fixed composite Gauss-Legendre rule (no adaptivity: independent of QUADPACK)."""
    z, w = np.polynomial.legendre.leggauss(order)
    edges = np.linspace(a, b, n_panels + 1)
    mid, half = (edges[1:] + edges[:-1]) / 2, (edges[1:] - edges[:-1]) / 2
    x = (mid[:, None] + half[:, None] * z).ravel()
    return float(np.sum(np.repeat(half, order) * np.tile(w, n_panels) * f(x)))


def test_narrow_gaussian_peak_closed_forms(tmp_path):
    """A narrow Gaussian peak: ρ_σ = A G_√(σ²+w²)(E - M) (convolution of two Gaussians) and, with the
    laplace kernel, C(t) = A e^{-tM + t²w²/2} Φ((M - t w²)/w)."""
    cfg = cfg_with(tmp_path, "kernel=laplace")
    A, M, w = 0.9, 1.2, 0.05
    d = val.exact_test_density(cfg, "gauss_peaks", 0, {}, lambda x: val.gauss_peaks(x, [A], [M], [w], 0.0, 5.0),
                               0.0, [M - 3 * w, M, M + 3 * w])
    t = cfg.t
    closed = A * np.exp(-t * M + t**2 * w**2 / 2) * special.ndtr((M - t * w**2) / w)
    np.testing.assert_allclose(d.correlator, closed, rtol=1e-9)
    for s in cfg["sigmas_gev"]:
        width = np.hypot(cfg.sigma(s), w)
        closed = A * gaussian(cfg.energies - M, width)
        assert np.max(np.abs(d.truth[s] - closed)) < 1e-9 * closed.max()


def test_breit_wigner_closed_forms(tmp_path):
    """A Lorentzian on ω > 0: with the laplace kernel C(t) = (A/π) Im[e^{-tz} E1(-tz)], z = M + iΓ/2;
    smeared, the Voigt profile minus the part of the real line below 0 (integrated on its own)."""
    cfg = cfg_with(tmp_path, "kernel=laplace")
    A, M, G = 1.3, 1.1, 0.2
    d = val.exact_test_density(cfg, "breit_wigner", 0, {}, lambda x: val.breit_wigner(x, [A], [M], [G]),
                               0.0, [M - 2 * G, M, M + 2 * G])
    z = M + 0.5j * G
    closed = A / np.pi * np.imag(np.exp(-cfg.t * z) * special.exp1(-cfg.t * z))
    np.testing.assert_allclose(d.correlator, closed, rtol=1e-9)
    for s in cfg["sigmas_gev"]:
        sigma = cfg.sigma(s)
        voigt = A * special.voigt_profile(cfg.energies - M, sigma, G / 2)
        below = np.array([integrate.quad(lambda x: gaussian(E - x, sigma) * A * (G / (2 * np.pi))
                                         / ((x - M) ** 2 + G**2 / 4), -np.inf, 0.0, epsrel=1e-12)[0]
                          for E in cfg.energies])
        assert np.max(np.abs(d.truth[s] - (voigt - below))) < 1e-9 * d.truth[s].max()


def test_o3_family_against_quadrature_in_rapidity(tmp_path):
    """O(3) with a drawn threshold: C(t) and ρ_σ by Gauss-Legendre in θ (ω = E_th cosh(θ/2))."""
    cfg = cfg_with(tmp_path)
    d = val.draw_family_member(cfg, "O3_threshold", 1)
    e_th = d.parameters["threshold"]

    def in_theta(f):
        def g(theta):
            omega = e_th * np.cosh(theta / 2)
            return f(omega) * val.o3_density(omega, e_th) * e_th * np.sinh(theta / 2) / 2
        return gauss_legendre(g, 1e-300, 12.0)      # ω up to E_th cosh 6 ≈ 200 E_th: kernel ~ e^{-200 E_th}

    corr = np.array([in_theta(lambda w, t=t: kernel(t, w, cfg["kernel"], cfg["T"])) for t in cfg.t])
    np.testing.assert_allclose(d.correlator, corr, rtol=1e-9)
    for s in cfg["sigmas_gev"]:
        truth = np.array([in_theta(lambda w, E=E: gaussian(E - w, cfg.sigma(s))) for E in cfg.energies])
        assert np.max(np.abs(d.truth[s] - truth)) < 1e-9 * truth.max()


def test_delta_continuum_against_fixed_quadrature(tmp_path):
    """A drawn delta + tanh continuum: the delta analytically, the continuum by a fixed rule."""
    cfg = cfg_with(tmp_path)
    d = val.draw_family_member(cfg, "delta_continuum", 2)
    p = d.parameters

    def continuum(w):   # (1 + tanh)/2 written with exp, independently of validation.tanh_continuum
        return p["B"] / (1 + np.exp(-2 * (w - p["E_c"]) / p["w"]))

    corr = p["A"] * kernel(cfg.t, p["M"], cfg["kernel"], cfg["T"]) + np.array(
        [gauss_legendre(lambda w, t=t: kernel(t, w, cfg["kernel"], cfg["T"]) * continuum(w), 1e-300, 60.0, 3000)
         for t in cfg.t])
    np.testing.assert_allclose(d.correlator, corr, rtol=1e-8)
    s = cfg["sigmas_gev"][0]
    sigma = cfg.sigma(s)
    truth = p["A"] * gaussian(cfg.energies - p["M"], sigma) + np.array(
        [gauss_legendre(lambda w, E=E: gaussian(E - w, sigma) * continuum(w), 1e-300, 10.0, 1000)
         for E in cfg.energies])
    assert np.max(np.abs(d.truth[s] - truth)) < 1e-9 * truth.max()


def test_streams_are_seeded_and_not_the_training_stream(tmp_path):
    cfg = cfg_with(tmp_path)
    a = val.draw_family_member(cfg, "delta_continuum", 3)
    b = val.draw_family(cfg, "delta_continuum", 4)[3]
    assert a.parameters == b.parameters
    np.testing.assert_array_equal(a.correlator, b.correlator)
    assert val.draw_family_member(cfg, "delta_continuum", 0).parameters != a.parameters
    # the in-distribution control is drawn from a stream no training file uses
    from training_sets import clean_block
    control = val.draw_family(cfg, val.CONTROL, 20)
    nb = cfg["ensembles"]["Nmax"]["nb"]
    assert all(len(d.parameters["coefficients"]) == nb for d in control)
    E0_train = clean_block(cfg, nb, 0)[0]["E0"]
    assert not set(d.parameters["E0"] for d in control) & set(E0_train.tolist())
    assert all(cfg["E0_min"] <= d.parameters["E0"] <= cfg["E0_max"] for d in control)


def test_thermal_kernel_refused_where_the_correlator_diverges(tmp_path):
    cfg = cfg_with(tmp_path, "kernel=thermal")
    for family in ("breit_wigner", "delta_continuum"):
        with pytest.raises(ValueError, match="diverges"):
            val.draw_family_member(cfg, family, 0)
    with pytest.raises(ValueError, match="unknown family"):
        val.draw_family(cfg, "lorentz", 1)


def test_family_metrics_known_answers():
    """Coverage, mean |pull| and relative error from budgets built to give known answers."""
    from validate_coverage import family_metrics

    from budget import Budget
    n_e = 10
    truth = np.ones((2, n_e))
    zeros = np.zeros(n_e)
    # density 0 misses by 0.5 with σ_tot = 1 (all covered); density 1 misses by 2 with σ_tot = 1
    # the Nref_b ensemble of density 1 is on the truth: its miss is not common to all ensembles
    budgets = [Budget(central=truth[0] + miss, stat=zeros + 0.6, rep=zeros + 0.8, sys_b=zeros, sys_rho=zeros,
                      sys_n=zeros, total=zeros + 1.0,
                      ensembles={"Nmax": {"central": truth[0] + miss}, "Nref_b": {"central": truth[0] + ref}})
               for miss, ref in ((0.5, 1.5), (2.0, 0.0))]
    m = family_metrics(truth, budgets)
    assert m["coverage"] == 0.5 and m["coverage_stat_rep"] == 0.5
    assert m["mean_abs_pull"] == pytest.approx(1.25)
    assert m["median_rel_error"] == pytest.approx(1.25)
    assert m["centre_rel_error_total"] == m["median_rel_error"]       # the same centre, ρ̄
    # an error with a centre of its own (a calibrated one): its own accuracy, 10 % off the truth
    nan2 = np.full((2, 2), np.nan)
    own = family_metrics(truth, budgets, calibrated={"total_calibrated": (truth * 1.1, truth, nan2)})
    assert own["centre_rel_error_total_calibrated"] == pytest.approx(0.1)
    assert own["coverage_total_calibrated"] == 1.0 and own["centre_rel_error_total"] == pytest.approx(1.25)
    assert m["median_sys_share"] == 0.0
    assert m["common_bias_share_of_misses"] == 0.0
    budgets[1].ensembles["Nref_b"]["central"] = truth[0] + 3.0
    assert family_metrics(truth, budgets)["common_bias_share_of_misses"] == 1.0


def test_family_metrics_report_total_with_prior_beside_total():
    """With Nref_prior in the audience the figures of σ_tot,prior appear beside σ_tot's: equal when
    Σ_prior = 0, wider when Σ_prior covers the miss; without it there are no such figures."""
    from validate_coverage import PRIOR_HEADLINE, family_metrics

    from budget import Budget
    n_e = 10
    truth = np.ones((2, n_e))
    zeros = np.zeros(n_e)

    def budgets(sys_prior):
        out = []
        for miss in (0.5, 2.0):
            extra = {} if sys_prior is None else {"sys_prior": zeros + sys_prior,
                                                  "total_with_prior": np.hypot(1.0, zeros + sys_prior)}
            out.append(Budget(central=truth[0] + miss, stat=zeros + 0.6, rep=zeros + 0.8, sys_b=zeros,
                              sys_rho=zeros, sys_n=zeros, total=zeros + 1.0, **extra,
                              ensembles={"Nmax": {"central": truth[0] + miss}}))
        return out
    plain = family_metrics(truth, budgets(None))
    assert not any(name in plain for name in PRIOR_HEADLINE)
    same = family_metrics(truth, budgets(0.0))
    assert same["coverage_with_prior"] == same["coverage"] == 0.5
    assert same["mean_abs_pull_with_prior"] == same["mean_abs_pull"]
    wide = family_metrics(truth, budgets(2.0))          # σ_tot,prior = √5 > 2: both covered
    assert wide["coverage_with_prior"] == 1.0 and wide["coverage"] == 0.5
    assert wide["mean_abs_pull_with_prior"] == pytest.approx(1.25 / np.sqrt(5))


def test_validate_coverage_reports_a_missing_audience(tiny_cfg):
    """Without trained checkpoints and with --no-train, the benchmark stops and says what is missing."""
    import validate_coverage
    with pytest.raises(SystemExit, match=r"checkpoint\(s\) missing, e.g. .*replica_0_best.pth"):
        validate_coverage.ensure_audience(tiny_cfg, train=False)


def test_state_tower_is_its_sum_of_smeared_deltas(tmp_path):
    """The tower: C(t) = Σ A_n b(t, E_n) and ρ_σ = Σ A_n G_σ(E - E_n), rebuilt from the stored
    parameters alone; its states are equally spaced and its amplitudes sum to A_tot."""
    cfg = cfg_with(tmp_path)
    d = val.draw_family_member(cfg, "state_tower", 5)
    p = d.parameters
    n = np.arange(1, p["n_states"] + 1)
    A = p["A_tot"] * n**p["power"] / np.sum(n**p["power"])
    E = p["E_1"] + p["spacing"] * (n - 1)
    assert 4 <= p["n_states"] <= 8 and A.sum() == pytest.approx(p["A_tot"])
    corr = sum(a * kernel(cfg.t, e, cfg["kernel"], cfg["T"]) for a, e in zip(A, E))
    np.testing.assert_allclose(d.correlator, corr, rtol=1e-12)
    for s in cfg["sigmas_gev"]:
        np.testing.assert_allclose(d.truth[s], sum(a * gaussian(cfg.energies - e, cfg.sigma(s)) for a, e in zip(A, E)),
                                   rtol=1e-12)


def test_fano_dip_against_fixed_quadrature_and_its_zero(tmp_path):
    """The Fano continuum vanishes at ε = -q (a dip below the continuum) and tends to the P-wave
    continuum far from M; C(t) and ρ_σ against a fixed Gauss-Legendre rule in ω."""
    cfg = cfg_with(tmp_path)
    d = val.draw_family_member(cfg, "fano_dip", 1)
    p = d.parameters
    zero = p["M"] - p["q"] * p["Gamma"] / 2
    args = (p["B"], p["E_c"], p["M"], p["Gamma"], p["q"])
    assert val.fano_continuum(np.array([zero]), *args)[0] == pytest.approx(0.0, abs=1e-12)
    far = 1e4
    assert val.fano_continuum(np.array([far]), *args)[0] == pytest.approx(
        val.pwave_continuum(np.array([far]), p["B"], p["E_c"])[0], rel=1e-4)
    corr = np.array([gauss_legendre(lambda w, t=t: kernel(t, w, cfg["kernel"], cfg["T"]) * val.fano_continuum(w, *args),
                                    p["E_c"], 60.0, 6000) for t in cfg.t])
    np.testing.assert_allclose(d.correlator, corr, rtol=1e-8)
    s = cfg["sigmas_gev"][0]
    truth = np.array([gauss_legendre(lambda w, E=E: gaussian(E - w, cfg.sigma(s)) * val.fano_continuum(w, *args),
                                     p["E_c"], 12.0, 2000) for E in cfg.energies])
    assert np.max(np.abs(d.truth[s] - truth)) < 1e-9 * truth.max()


def test_compare_prints_two_studies_side_by_side(tmp_path, capsys):
    """--compare reads each study's summary and prints its level-1 figures beside the other's, only
    for the errors both have; a root without a study is one line naming the file."""
    import pandas as pd
    from validate_coverage import main

    def study(root, coverage, with_calibrated):
        row = {"family": "gauss_peaks", "sigma_gev": 0.44, "n_audiences": 3,
               "median_rel_error_mean": 0.11, "median_rel_error_spread": 0.01}
        for e in ("total", "total_calibrated") if with_calibrated else ("total",):
            row |= {f"coverage_{e}_mean": coverage, f"coverage_{e}_spread": 0.02,
                    f"mean_abs_pull_{e}_mean": 1.5, f"crps_{e}_mean": 0.0706}
        frame = pd.DataFrame([{**row, "level": 1}, {**row, "level": 0, "median_rel_error_mean": 9.0}])
        (root / "results" / "validation").mkdir(parents=True)
        frame.to_csv(root / "results" / "validation" / "coverage_summary.csv", index=False)

    study(tmp_path / "a", 0.52, True)
    study(tmp_path / "b", 0.61, False)
    assert main(["--compare", f"demo={tmp_path / 'a'}", "--compare", f"larger={tmp_path / 'b'}"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and "total_calibrated" not in lines[0]          # only what both have
    assert lines[2] == ("| gauss_peaks | 0.44 | 11.0 ± 1.0 % | 52 ± 2 %, 1.50, 0.0706 | 11.0 ± 1.0 % "
                        "| 61 ± 2 %, 1.50, 0.0706 |")
    assert main(["--compare", f"x={tmp_path / 'none'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "coverage_summary.csv" in err and "missing" in err


def test_pion_vector_ff_against_fixed_quadrature_and_its_identities(tmp_path):
    """The ρ through the pion form factor: area A, |F(M)|² = M²/Γ² (Γ(M) = Γ), P-wave onset
    ∝ (ω - E_c)^{3/2} at threshold; C(t) and ρ_σ against a fixed Gauss-Legendre rule in ω."""
    cfg = cfg_with(tmp_path)
    d = val.draw_family_member(cfg, "pion_vector_ff", 2)
    p = d.parameters
    Ec, M, G, B = p["E_c"], p["M"], p["Gamma"], p["B"]
    f = lambda w: B * val.pwave_resonance(w, Ec, M, G)                               # noqa: E731
    assert gauss_legendre(f, Ec, 400.0, 40000) == pytest.approx(p["A"], rel=1e-4)   # tail ~ ω⁻⁴ beyond 400
    phase = val.pwave_continuum(np.array([M]), 1.0, Ec)[0]
    assert val.pwave_resonance(np.array([M]), Ec, M, G)[0] == pytest.approx(phase * M**2 / G**2, rel=1e-12)
    onset = val.pwave_resonance(Ec + np.array([1e-6, 4e-6]), Ec, M, G)
    assert onset[1] / onset[0] == pytest.approx(4**1.5, rel=1e-3)
    assert val.pwave_resonance(np.array([Ec * 0.99]), Ec, M, G)[0] == 0.0
    corr = np.array([gauss_legendre(lambda w, t=t: kernel(t, w, cfg["kernel"], cfg["T"]) * f(w), Ec, 60.0, 6000)
                     for t in cfg.t])
    np.testing.assert_allclose(d.correlator, corr, rtol=1e-8)
    s = cfg["sigmas_gev"][0]
    truth = np.array([gauss_legendre(lambda w, E=E: gaussian(E - w, cfg.sigma(s)) * f(w), Ec, 12.0, 2000)
                      for E in cfg.energies])
    assert np.max(np.abs(d.truth[s] - truth)) < 1e-9 * truth.max()


def test_two_channel_cusp_against_fixed_quadrature_and_its_identities(tmp_path):
    """Two S-wave channels: each onset ∝ (ω - E_j)^{1/2}, the plateau B_1 + B_2 at large ω; C(t) and
    ρ_σ against a fixed Gauss-Legendre rule in u with ω = E_j + u² on each piece, which removes the
    square-root singularities of the slope."""
    cfg = cfg_with(tmp_path)
    d = val.draw_family_member(cfg, "two_channel_cusp", 1)
    p = d.parameters
    B, E = (p["B_1"], p["B_2"]), (p["E_1"], p["E_2"])
    f = lambda w: val.swave_channels(w, B, E)                                           # noqa: E731
    for j in range(2):
        onset = val.swave_channels(E[j] + np.array([1e-8, 4e-8]), B, E) - val.swave_channels(np.array([E[j]]), B, E)
        assert onset[1] / onset[0] == pytest.approx(2.0, rel=1e-4)
    assert val.swave_channels(np.array([1e6]), B, E)[0] == pytest.approx(B[0] + B[1], rel=1e-9)
    assert val.swave_channels(np.array([E[0] * 0.999]), B, E)[0] == 0.0

    def integral(g, top, n):
        """∫_{E_1}^{top} g(ω) f(ω) dω, as ∫ g f(E_j + u²) 2u du on [E_1, E_2] and [E_2, top]."""
        pieces = ((E[0], E[1]), (E[1], top))
        return sum(gauss_legendre(lambda u, a=a: g(a + u**2) * f(a + u**2) * 2 * u, 0.0, np.sqrt(b - a), n)
                   for a, b in pieces)

    corr = np.array([integral(lambda w, t=t: kernel(t, w, cfg["kernel"], cfg["T"]), 60.0, 4000) for t in cfg.t])
    np.testing.assert_allclose(d.correlator, corr, rtol=1e-8)
    s = cfg["sigmas_gev"][0]
    truth = np.array([integral(lambda w, E_k=E_k: gaussian(E_k - w, cfg.sigma(s)), 12.0, 2000) for E_k in cfg.energies])
    assert np.max(np.abs(d.truth[s] - truth)) < 1e-9 * truth.max()
