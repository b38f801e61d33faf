#!/bin/bash
# Stages 3 and 4 for the delta peak + tanh continuum mock: one job predicts its bootstrap
# samples with every replica of every ensemble for every σ, then runs the error-budget
# analysis (results/, SPEC §8).
#   bash slurm_scripts/submit_prediction_delta.sh [sbatch options...]   -> prints the job id
set -euo pipefail
source "${SPECTRAL_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}/slurm_scripts/common.sh"

if [[ "${1:-}" == run ]]; then
    job_header
    run_stage predict_on_delta_tanh.py
    run_stage analyze_delta_tanh_mock.py
    exit 0
fi

check_noise_file
placement=(--partition="$SPECTRAL_CPU_PARTITION")
(( SPECTRAL_PREDICTION_GPUS > 0 )) && placement=(--partition="$SPECTRAL_GPU_PARTITION" --gres="gpu:$SPECTRAL_PREDICTION_GPUS")
submit_job "${BASH_SOURCE[0]}" prediction_delta "%x_%j.out" \
    "${placement[@]}" \
    --time="$SPECTRAL_PREDICTION_TIME" \
    --cpus-per-task="$SPECTRAL_PREDICTION_CPUS" \
    --mem="$SPECTRAL_PREDICTION_MEM" \
    "$@"
