#!/bin/bash
# Stages 3 and 4 for the O(3) sigma-model mock: one job predicts its bootstrap samples with
# every replica of every ensemble for every σ, then runs the error-budget analysis (results/, SPEC §8).
#   bash slurm_scripts/submit_prediction_O3.sh [sbatch options...]   -> prints the job id
set -euo pipefail
source "${SPECTRAL_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}/slurm_scripts/common.sh"

if [[ "${1:-}" == run ]]; then
    job_header
    run_stage predict_on_O3_mock_sigma.py
    run_stage analyze_O3_mock_sigma.py
    exit 0
fi

check_noise_file
placement=(--partition="$SPECTRAL_CPU_PARTITION")
(( SPECTRAL_PREDICTION_GPUS > 0 )) && placement=(--partition="$SPECTRAL_GPU_PARTITION" --gres="gpu:$SPECTRAL_PREDICTION_GPUS")
submit_job "${BASH_SOURCE[0]}" prediction_O3 "%x_%j.out" \
    "${placement[@]}" \
    --time="$SPECTRAL_PREDICTION_TIME" \
    --cpus-per-task="$SPECTRAL_PREDICTION_CPUS" \
    --mem="$SPECTRAL_PREDICTION_MEM" \
    "$@"
