#!/bin/bash
# Stage 2: the networks. A GPU array; with SPECTRAL_TRAINING_LAYOUT=group (default) one task per
# (ensemble, σ) trains that group's N_r replicas together in one process (tasks.training_groups),
# with layout=replica one task per (ensemble, replica, σ) (tasks.training_tasks).
# Before the time limit Slurm sends the warning signal (SPECTRAL_TRAINING_SIGNAL) to this shell;
# it is forwarded to the worker, which saves a resumable state and stops; the job then requeues
# itself and the rerun with the same arguments resumes. A cancelled job (SIGTERM) is not requeued.
#   bash slurm_scripts/submit_training_sigma.sh [sbatch options...]     -> prints the job id
set -euo pipefail
source "${SPECTRAL_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}/slurm_scripts/common.sh"

if [[ "${1:-}" == run ]]; then
    job_header
    case "$SPECTRAL_TRAINING_LAYOUT" in
        group) task_ids="$(spectral_config group-range "$SLURM_ARRAY_TASK_ID")" ;;
        replica) task_ids="$SLURM_ARRAY_TASK_ID" ;;
    esac
    stage_options
    command=("$SPECTRAL_PYTHON" "$SPECTRAL_REPO/hpc_train_sigma.py" "${STAGE_OPTIONS[@]}" --task-id "$task_ids")
    log "+ $(printf '%q ' "${command[@]}")"
    # The worker runs in the background so that this shell can take the signal and pass it on.
    warned=0 worker=""
    trap 'warned=1; log "time-limit warning (USR1): worker $worker saves its state"; kill -USR1 "$worker" 2>/dev/null || true' USR1
    trap 'log "SIGTERM: passed to worker $worker"; kill -TERM "$worker" 2>/dev/null || true' TERM
    "${command[@]}" &
    worker=$!
    while true; do
        status=0
        wait "$worker" || status=$?
        # wait returns early (status > 128) when a trapped signal arrives: keep waiting
        if (( status > 128 )) && kill -0 "$worker" 2>/dev/null; then continue; fi
        break
    done
    if (( warned )); then
        log "worker stopped with status $status after the warning; requeueing job $SLURM_JOB_ID to resume"
        run_cmd scontrol requeue "$SLURM_JOB_ID"
        exit 0
    fi
    log "worker finished with status $status"
    exit "$status"
fi

case "$SPECTRAL_TRAINING_LAYOUT" in
    group) n_tasks="$(spectral_config array-size training-groups)" ;;
    replica) n_tasks="$(spectral_config array-size training)" ;;
    *) echo "error: SPECTRAL_TRAINING_LAYOUT='$SPECTRAL_TRAINING_LAYOUT': expected group or replica" >&2; exit 2 ;;
esac
gpu_options=()
(( SPECTRAL_TRAINING_GPUS > 0 )) && gpu_options=(--gres="gpu:$SPECTRAL_TRAINING_GPUS")
submit_job "${BASH_SOURCE[0]}" training "%x_%A_%a.out" \
    --array="0-$((n_tasks - 1))" \
    --partition="$SPECTRAL_GPU_PARTITION" \
    --time="$SPECTRAL_TRAINING_TIME" \
    --cpus-per-task="$SPECTRAL_TRAINING_CPUS" \
    --mem="$SPECTRAL_TRAINING_MEM" \
    ${gpu_options[@]+"${gpu_options[@]}"} \
    --signal="$SPECTRAL_TRAINING_SIGNAL" \
    --requeue --open-mode=append \
    "$@"
