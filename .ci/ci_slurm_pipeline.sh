#!/bin/bash
# The whole pipeline on a running Slurm (see .ci/slurm_cluster.sh), on the `tiny` preset:
# submit slurm_scripts/submit_all.sh, wait for the chain by polling squeue, check that every job
# COMPLETED (no sacct here: `squeue -t all` while MinJobAge keeps finished jobs visible), then
# check every stage's outputs and the final analysis files (run_pipeline.py --check).
# Then the requeue path: a training task gets the time-limit warning signal while it trains, must
# requeue itself, resume and complete. Exits non-zero if anything fails.
#   bash .ci/ci_slurm_pipeline.sh [WORK_DIR]
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${1:-$(mktemp -d /tmp/spectral_ci_pipeline.XXXXXX)}"
TIMEOUT_S="${CI_SLURM_TIMEOUT:-900}"
PYTHON="${SPECTRAL_PYTHON:-python3}"

log() { echo "[ci_slurm $(date +%T)] $*"; }

# The submit configuration: the scripts and cluster.env are used unmodified; only settings that
# any user sets change. One CPU per job, since the machine has 2 cores.
export SPECTRAL_PRESET=tiny
export SPECTRAL_ROOT="$WORK"
export SPECTRAL_OVERRIDES=""
export SPECTRAL_PYTHON="$PYTHON"
export SPECTRAL_GENERATION_CPUS=1 SPECTRAL_TRAINING_CPUS=1 SPECTRAL_PREDICTION_CPUS=1
export SPECTRAL_GENERATION_MEM=2G SPECTRAL_TRAINING_MEM=2G SPECTRAL_PREDICTION_MEM=2G
export SPECTRAL_GENERATION_TIME=00:10:00 SPECTRAL_TRAINING_TIME=00:10:00 SPECTRAL_PREDICTION_TIME=00:10:00

TERMINAL_OK=COMPLETED
TERMINAL_BAD="FAILED CANCELLED TIMEOUT NODE_FAIL OUT_OF_MEMORY BOOT_FAIL DEADLINE PREEMPTED SPECIAL_EXIT"

# wait_for IDS...: poll squeue until every job and array task is finished; fail unless all COMPLETED.
wait_for() {
    local ids
    ids="$(IFS=,; echo "$*")"
    local start=$SECONDS states line state bad
    while true; do
        states="$(squeue -h -t all -j "$ids" -o '%i %T')"
        if ! grep -vqE " ($TERMINAL_OK|${TERMINAL_BAD// /|})\$" <<< "$states"; then
            break
        fi
        if (( SECONDS - start > TIMEOUT_S )); then
            log "timeout after ${TIMEOUT_S} s; queue:"
            echo "$states"
            return 1
        fi
        sleep 2
    done
    log "final states of jobs $ids (squeue -h -t all -j $ids -o '%i %T'), after $((SECONDS - start)) s:"
    echo "$states" | sort -V | sed 's/^/    /'
    bad=0
    while read -r line state; do
        if [[ "$state" != "$TERMINAL_OK" ]]; then
            log "job $line ended $state"
            bad=1
        fi
    done <<< "$states"
    return "$bad"
}

show_logs() {
    log "job logs in $WORK/slurm_logs:"
    local f
    for f in "$WORK"/slurm_logs/*; do
        [[ -f "$f" ]] || continue
        echo "===== $f"
        tail -n 40 "$f"
    done
}

mkdir -p "$WORK"
log "work directory $WORK"
cd "$WORK"
submitted="$(bash "$REPO/slurm_scripts/submit_all.sh")"
echo "$submitted" | sed 's/^/    /'
mapfile -t ids < <(awk '{print $2}' <<< "$submitted")
expected=5    # generation, training, the calibration, the two mocks
if (( ${#ids[@]} != expected )); then
    log "expected $expected job ids from submit_all.sh, got: ${ids[*]}"
    exit 1
fi
if ! wait_for "${ids[@]}"; then
    show_logs
    log "FAILED: a pipeline job did not complete"
    exit 1
fi

log "checking every stage's outputs"
if ! "$PYTHON" "$REPO/run_pipeline.py" --check --preset tiny --root "$WORK"; then
    show_logs
    log "FAILED: outputs missing"
    exit 1
fi

# Requeue: a fresh training task for one group, long enough (more epochs, no early stop) to be
# signalled while it trains, as Slurm does before a time limit (--signal=B:USR1@...).
log "requeue check: one training group, signalled with USR1 while it trains"
export SPECTRAL_OVERRIDES="max_epochs=60 patience=60"
export SPECTRAL_ROOT="$WORK/requeue"
mkdir -p "$SPECTRAL_ROOT"
ln -s "$WORK"/training_datasets_T* "$SPECTRAL_ROOT/"
requeue_id="$(bash "$REPO/slurm_scripts/submit_training_sigma.sh" --array=0)"
task="${requeue_id}_0"
requeue_log="$SPECTRAL_ROOT/slurm_logs/spectral_training_${requeue_id}_0.out"
for _ in $(seq 1 600); do
    grep -q "^epoch 1 " "$requeue_log" 2>/dev/null && break   # the first epoch is done
    sleep 0.2
done
log "+ scancel --batch --signal=USR1 $task"
scancel --batch --signal=USR1 "$task" || true
if ! wait_for "$requeue_id"; then
    show_logs
    log "FAILED: the signalled training task did not complete after its requeue"
    exit 1
fi
restarts="$(scontrol show job "$task" | grep -o 'Restarts=[0-9]*')"
log "training task $task: $restarts; its log:"
grep -v "^epoch" "$requeue_log" | sed 's/^/    /'
if [[ "$restarts" == "Restarts=0" ]] || ! grep -q "requeueing job" "$requeue_log" \
        || ! grep -q "continuing at epoch" "$requeue_log"; then
    log "FAILED: the signalled task was not requeued and resumed"
    exit 1
fi
log "Slurm pipeline OK: jobs ${ids[*]} and the requeued, resumed task $task COMPLETED"
