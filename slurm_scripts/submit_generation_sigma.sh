#!/bin/bash
# Stage 1: the training sets. A CPU array with one task per N_b of the preset
# (tasks.generation_tasks); each task writes the files of every N_rho for its N_b.
#   bash slurm_scripts/submit_generation_sigma.sh [sbatch options...]   -> prints the job id
set -euo pipefail
source "${SPECTRAL_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}/slurm_scripts/common.sh"

if [[ "${1:-}" == run ]]; then
    job_header
    run_stage generate_full_dataset_sigma.py --task-id "$SLURM_ARRAY_TASK_ID"
    exit 0
fi

check_noise_file
n_tasks="$(spectral_config array-size generation)"
submit_job "${BASH_SOURCE[0]}" generation "%x_%A_%a.out" \
    --array="0-$((n_tasks - 1))" \
    --partition="$SPECTRAL_CPU_PARTITION" \
    --time="$SPECTRAL_GENERATION_TIME" \
    --cpus-per-task="$SPECTRAL_GENERATION_CPUS" \
    --mem="$SPECTRAL_GENERATION_MEM" \
    "$@"
