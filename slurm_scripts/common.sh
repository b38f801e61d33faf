# Shared by the submit scripts (sourced, not run). Each submit script is two things:
#   bash slurm_scripts/submit_X.sh [sbatch options...]   submits itself and prints the job id
#   (Slurm runs it as)  submit_X.sh run                  the job body
# Settings come from the environment, else from slurm_scripts/cluster.env (see there). At submit
# time they are resolved and exported, and the job inherits them (sbatch --export=ALL), so a job
# runs with exactly what was resolved when it was submitted -- also after a requeue.

# The repository: known from this file at submit time; a running job gets it from the
# environment, because Slurm runs a copy of the batch script from its spool directory.
SPECTRAL_REPO="${SPECTRAL_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
SPECTRAL_CLUSTER_ENV="${SPECTRAL_CLUSTER_ENV:-$SPECTRAL_REPO/slurm_scripts/cluster.env}"
if [[ ! -f "$SPECTRAL_CLUSTER_ENV" ]]; then
    echo "error: cluster settings file $SPECTRAL_CLUSTER_ENV not found (SPECTRAL_CLUSTER_ENV)" >&2
    exit 2
fi
# shellcheck source=cluster.env
source "$SPECTRAL_CLUSTER_ENV"
mkdir -p "$SPECTRAL_ROOT"
SPECTRAL_ROOT="$(cd "$SPECTRAL_ROOT" && pwd)"
export SPECTRAL_REPO SPECTRAL_CLUSTER_ENV ${!SPECTRAL_@}

log() { echo "[$(date '+%F %T')] $*" >&2; }

# Print a command, then run it (the scripts say what they run).
run_cmd() {
    log "+ $(printf '%q ' "$@")"
    "$@"
}

activate_python() {
    set +u   # module and venv activation scripts often read unset variables
    if [[ -n "$SPECTRAL_SETUP" ]]; then
        log "+ $SPECTRAL_SETUP"
        eval "$SPECTRAL_SETUP" >&2   # stdout carries the job id
    fi
    if [[ -n "$SPECTRAL_VENV" ]]; then
        # shellcheck disable=SC1091
        source "$SPECTRAL_VENV/bin/activate" >&2
    fi
    set -u
    if ! command -v "$SPECTRAL_PYTHON" >/dev/null; then
        echo "error: python interpreter '$SPECTRAL_PYTHON' not found" \
             "(SPECTRAL_PYTHON, SPECTRAL_VENV, SPECTRAL_SETUP)" >&2
        exit 2
    fi
}

# --preset, --set for each override, --root: what every stage script takes (method §10).
stage_options() {
    STAGE_OPTIONS=(--preset "$SPECTRAL_PRESET" --root "$SPECTRAL_ROOT")
    local item items
    read -r -a items <<< "$SPECTRAL_OVERRIDES"
    for item in "${items[@]}"; do
        STAGE_OPTIONS+=(--set "$item")
    done
}

# python config.py with the pipeline's preset and overrides, e.g. `spectral_config array-size training`.
spectral_config() {
    stage_options
    "$SPECTRAL_PYTHON" "$SPECTRAL_REPO/config.py" "${STAGE_OPTIONS[@]}" "$@"
}

# Run one stage script of the repository with the pipeline's options.
run_stage() {
    local script="$1"; shift
    stage_options
    run_cmd "$SPECTRAL_PYTHON" "$SPECTRAL_REPO/$script" "${STAGE_OPTIONS[@]}" "$@"
}

# The noise file must exist before anything is queued (generation and prediction read it):
# under SPECTRAL_ROOT, else the copy shipped in the repository (config.Config.input_path).
check_noise_file() {
    local noise
    noise="$(spectral_config get noise_file)"
    if [[ "$noise" == /* ]]; then
        [[ -f "$noise" ]] && return 0
    elif [[ -f "$SPECTRAL_ROOT/$noise" || -f "$SPECTRAL_REPO/$noise" ]]; then
        return 0
    fi
    echo "error: noise file $noise (preset key noise_file) found neither under SPECTRAL_ROOT=$SPECTRAL_ROOT" \
         "nor in $SPECTRAL_REPO; set SPECTRAL_OVERRIDES=\"noise_file=/path/to/noise.h5\"" >&2
    exit 2
}

# submit_job SCRIPT NAME LOG_PATTERN [sbatch options...]: submit SCRIPT as a job, print its id.
submit_job() {
    local script="$1" name="$2" pattern="$3"; shift 3
    mkdir -p "$SPECTRAL_ROOT/slurm_logs"   # Slurm does not create it; a missing one fails the job
    local options=(--parsable --export=ALL --job-name="spectral_$name" --chdir="$SPECTRAL_ROOT"
                   --output="$SPECTRAL_ROOT/slurm_logs/$pattern")
    [[ -n "$SPECTRAL_ACCOUNT" ]] && options+=(--account="$SPECTRAL_ACCOUNT")
    [[ -n "$SPECTRAL_QOS" ]] && options+=(--qos="$SPECTRAL_QOS")
    local extra
    read -r -a extra <<< "$SPECTRAL_SBATCH_EXTRA"
    local id
    id="$(run_cmd sbatch "${options[@]}" ${extra[@]+"${extra[@]}"} "$@" "$script" run)"
    id="${id%%;*}"   # --parsable prints "id" or "id;cluster"
    log "submitted $name: job $id (log: $SPECTRAL_ROOT/slurm_logs/)"
    echo "$id"
}

# mock_job MOCK SCRIPT [run | sbatch options...]: the job of one validation mock (the table
# mocks.MOCK_TABLE names its stage scripts). As the job body (run): its prediction, then its
# analysis; else: submit SCRIPT as job prediction_<suffix of SCRIPT> and print its id.
mock_job() {
    local mock="$1" script="$2"; shift 2
    if [[ "${1:-}" == run ]]; then
        job_header
        local stages stage
        stages="$("$SPECTRAL_PYTHON" "$SPECTRAL_REPO/mocks.py" scripts "$mock")"
        for stage in $stages; do
            run_stage "$stage"
        done
        exit 0
    fi
    check_noise_file
    local name
    name="$(basename "$script" .sh)"
    local placement=(--partition="$SPECTRAL_CPU_PARTITION")
    if (( SPECTRAL_PREDICTION_GPUS > 0 )); then
        placement=(--partition="$SPECTRAL_GPU_PARTITION" --gres="gpu:$SPECTRAL_PREDICTION_GPUS")
    fi
    submit_job "$script" "${name#submit_}" "%x_%j.out" \
        "${placement[@]}" \
        --time="$SPECTRAL_PREDICTION_TIME" \
        --cpus-per-task="$SPECTRAL_PREDICTION_CPUS" \
        --mem="$SPECTRAL_PREDICTION_MEM" \
        "$@"
}

# The job's first lines in its log: what, where, which settings.
job_header() {
    log "job ${SLURM_JOB_ID:-?} (${SLURM_JOB_NAME:-?}) array task ${SLURM_ARRAY_TASK_ID:--}" \
        "on $(hostname) restart ${SLURM_RESTART_COUNT:-0}; preset $SPECTRAL_PRESET;" \
        "overrides '${SPECTRAL_OVERRIDES}'; root $SPECTRAL_ROOT"
}

activate_python
