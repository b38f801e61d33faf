"""The names every stage shares, each named once: the ensembles' roles in the error budget
(method §7-8), the training run of the interval networks and what the rows of a correlator are
(method §8, §10).  Imports nothing."""

REFERENCE = "Nmax"              # the result's ensemble: ρ̄_Nmax and its σ_stat, σ_rep
# method §7-8: the systematic X and the reference ensemble Nref_X it is measured against
SYSTEMATICS = {"sys_b": "Nref_b", "sys_rho": "Nref_rho", "sys_n": "Nref_n"}
# method §8 "Beyond the paper": the prior systematic and its ensemble (Nmax's network, N_b and N_ρ
# trained on the second space; derived from Nmax by config.load_config)
PRIOR_ENSEMBLE = "Nref_prior"
PRIOR_SYSTEMATIC = ("sys_prior", PRIOR_ENSEMBLE)
# the training run of the interval networks (interval_networks.py): Nmax's network, N_b and N_ρ on
# the calibration space.  Not an ensemble of the audience (not in its budget): it predicts the same
# samples into a prediction file of its own; its files are trained_models_sigma{100σ}/Nmax/interval_{r}_*
# (paths.py) and its streams are keyed by this name.
INTERVAL_RUN = "Nmax_interval"
# the centres of the calibrated result (calibration.py): the audience's own (ρ̄_Nmax, its σ_tot
# calibrated per bin of its relative width), and, with the interval networks, ρ̄_Nmax with the Σ_X around
# their calibrated width, or their median
CALIBRATED_CENTRES = ("audience", "paper", "median")
# the centres that need the interval networks' width (and median)
NETWORK_CENTRES = ("paper", "median")

# bootstrap or jackknife samples of the mean: their errors differ (budget.sample_std); the
# resampling of per-configuration data gives one or the other (correlator_files.resample)
SAMPLE_KINDS = ("bootstrap", "jackknife")
# what the rows of a user's correlator are: per-configuration measurements, or such samples
ROW_KINDS = ("configurations", *SAMPLE_KINDS)
