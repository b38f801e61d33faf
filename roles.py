"""The names every stage shares, each named once: the ensembles' roles in the error budget
(SPEC §7-8) and what the rows of a correlator are (SPEC §8, §10).  Imports nothing."""

REFERENCE = "Nmax"              # the result's ensemble: ρ̄_Nmax and its σ_stat, σ_rep
# SPEC §7-8: the systematic X and the reference ensemble Nref_X it is measured against
SYSTEMATICS = {"sys_b": "Nref_b", "sys_rho": "Nref_rho", "sys_n": "Nref_n"}
# SPEC §8 "Beyond the paper": the prior systematic and its ensemble (Nmax's network, N_b and N_ρ
# trained on the second space; derived from Nmax by config.load_config)
PRIOR_ENSEMBLE = "Nref_prior"
PRIOR_SYSTEMATIC = ("sys_prior", PRIOR_ENSEMBLE)

# bootstrap or jackknife samples of the mean: their errors differ (budget.sample_std); the
# resampling of per-configuration data gives one or the other (correlator_files.resample)
SAMPLE_KINDS = ("bootstrap", "jackknife")
# what the rows of a user's correlator are: per-configuration measurements, or such samples
ROW_KINDS = ("configurations", *SAMPLE_KINDS)
