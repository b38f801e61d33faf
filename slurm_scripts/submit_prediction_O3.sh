#!/bin/bash
# Stages 3 and 4 for the O(3) sigma-model mock: one job predicts its bootstrap samples with
# every replica of every ensemble for every σ, then runs the error-budget analysis (results/, method §8).
#   bash slurm_scripts/submit_prediction_O3.sh [sbatch options...]   -> prints the job id
set -euo pipefail
source "${SPECTRAL_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}/slurm_scripts/common.sh"
mock_job O3 "${BASH_SOURCE[0]}" "$@"
