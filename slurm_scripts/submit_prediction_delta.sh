#!/bin/bash
# Stages 3 and 4 for the delta peak + tanh continuum mock: one job predicts its bootstrap
# samples with every replica of every ensemble for every σ, then runs the error-budget
# analysis (results/, method §8).
#   bash slurm_scripts/submit_prediction_delta.sh [sbatch options...]   -> prints the job id
set -euo pipefail
source "${SPECTRAL_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}/slurm_scripts/common.sh"
mock_job delta_tanh "${BASH_SOURCE[0]}" "$@"
