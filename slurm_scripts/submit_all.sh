#!/bin/bash
# The whole pipeline as chained submissions (each waits for the previous with afterok):
# generation (CPU array) -> training (GPU array) -> the calibration (CPU, or GPU with
# SPECTRAL_CALIBRATION_GPUS) -> prediction + analysis of each mock (CPU; the mocks of
# mocks.MOCK_TABLE). Prints one line "stage job_id" per submission.
# Settings: slurm_scripts/cluster.env.
#   bash slurm_scripts/submit_all.sh [sbatch options for every job...]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/common.sh"

generation="$(bash "$here/submit_generation_sigma.sh" "$@")"
training="$(bash "$here/submit_training_sigma.sh" --dependency="afterok:$generation" "$@")"
echo "generation $generation"
echo "training $training"
calibration="$(bash "$here/submit_calibration_sigma.sh" --dependency="afterok:$training" "$@")"
echo "calibration $calibration"
job_ids="$generation,$training,$calibration"
before_prediction="$calibration"
mock_scripts="$("$SPECTRAL_PYTHON" "$SPECTRAL_REPO/mocks.py" submit-scripts)"
for script in $mock_scripts; do
    id="$(bash "$here/$script" --dependency="afterok:$before_prediction" "$@")"
    name="${script#submit_}"
    echo "${name%.sh} $id"
    job_ids+=",$id"
done
log "results will be in $SPECTRAL_ROOT/results/, logs in $SPECTRAL_ROOT/slurm_logs/;" \
    "follow with: squeue -j $job_ids"
