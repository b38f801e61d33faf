#!/bin/bash
# The whole pipeline as four chained submissions (each waits for the previous with afterok):
# generation (CPU array) -> training (GPU array) -> prediction + analysis of each mock (CPU).
# Prints one line "stage job_id" per submission. Settings: slurm_scripts/cluster.env.
#   bash slurm_scripts/submit_all.sh [sbatch options for every job...]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/common.sh"

generation="$(bash "$here/submit_generation_sigma.sh" "$@")"
training="$(bash "$here/submit_training_sigma.sh" --dependency="afterok:$generation" "$@")"
prediction_O3="$(bash "$here/submit_prediction_O3.sh" --dependency="afterok:$training" "$@")"
prediction_delta="$(bash "$here/submit_prediction_delta.sh" --dependency="afterok:$training" "$@")"

echo "generation $generation"
echo "training $training"
echo "prediction_O3 $prediction_O3"
echo "prediction_delta $prediction_delta"
log "results will be in $SPECTRAL_ROOT/results/, logs in $SPECTRAL_ROOT/slurm_logs/;" \
    "follow with: squeue -j $generation,$training,$prediction_O3,$prediction_delta"
