#!/bin/bash
# Stage 2b: the calibration of the calibrated result (calibrate_sigma.py, every σ in one job): the
# audience (and its interval networks, with interval_networks=true) predict the calibration set,
# the conformal factors are written to calibration/.
#   bash slurm_scripts/submit_calibration_sigma.sh [sbatch options...]   -> prints the job id
set -euo pipefail
source "${SPECTRAL_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}/slurm_scripts/common.sh"

if [[ "${1:-}" == run ]]; then
    job_header
    run_stage calibrate_sigma.py
    exit 0
fi
check_noise_file
placement=(--partition="$SPECTRAL_CPU_PARTITION")
if (( SPECTRAL_CALIBRATION_GPUS > 0 )); then
    placement=(--partition="$SPECTRAL_GPU_PARTITION" --gres="gpu:$SPECTRAL_CALIBRATION_GPUS")
fi
submit_job "${BASH_SOURCE[0]}" calibration "%x_%j.out" \
    "${placement[@]}" \
    --time="$SPECTRAL_CALIBRATION_TIME" \
    --cpus-per-task="$SPECTRAL_CALIBRATION_CPUS" \
    --mem="$SPECTRAL_CALIBRATION_MEM" \
    "$@"
