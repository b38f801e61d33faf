#!/bin/bash
# A real one-node Slurm (Debian's slurmctld + slurmd, 22.05) on localhost, for CI and for trying
# the submit scripts on a laptop. Needs root. No systemd, no munge, no accounting database.
#   bash .ci/slurm_cluster.sh start    install if missing, configure, start, wait for an idle node
#   bash .ci/slurm_cluster.sh stop     cancel leftover jobs, stop both daemons by their PIDs
# Partitions `cpu` (default) and `gpu` on the same node. The node declares fake GPUs (gres with
# File=/dev/null...) so that the training jobs' unmodified --gres=gpu:N requests are accepted, and
# advertises more CPUs and memory than the machine has (config_overrides) so that cluster-size
# requests are accepted too. Why each non-default setting of slurm.conf is there: above it.
set -euo pipefail

STATE="${SLURM_CI_STATE:-/tmp/spectral_ci_slurm}"   # pids, logs, spool
NODE_CPUS="${SLURM_CI_CPUS:-16}"
NODE_MEMORY_MB="${SLURM_CI_MEMORY_MB:-65536}"
FAKE_GPUS=(/dev/null /dev/zero)                     # one fake GPU per device file
CONF_DIR=/etc/slurm
MARK="# written by spectral .ci/slurm_cluster.sh"

log() { echo "[slurm_cluster $(date +%T)] $*" >&2; }

install_slurm() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null; then
        return
    fi
    log "installing slurmctld slurmd slurm-client from apt"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client >/dev/null
}

write_config() {
    local host
    host="$(hostname -s)"
    if [[ -f "$CONF_DIR/slurm.conf" ]] && ! grep -qF "$MARK" "$CONF_DIR/slurm.conf"; then
        log "error: $CONF_DIR/slurm.conf exists and was not written by this script; not touching it"
        exit 2
    fi
    mkdir -p "$CONF_DIR" "$STATE/ctld" "$STATE/slurmd"
    local gpu_lines="" dev
    for dev in "${FAKE_GPUS[@]}"; do
        gpu_lines+="NodeName=$host Name=gpu File=$dev"$'\n'
    done
    cat > "$CONF_DIR/gres.conf" <<EOF
$MARK
AutoDetect=off
$gpu_lines
EOF
    # Slurm 22.05 from Debian, measured on such a one-node cluster:
    # - auth/none and cred/none: no munge daemon is needed on a throwaway localhost cluster;
    # - batch_sched_delay=0: jobs start at once instead of in 3 s waves;
    # - kill_invalid_depend: a job whose afterok dependency failed is cancelled, not left pending
    #   forever (in 22.05 it must be under DependencyParameters, not SchedulerParameters);
    # - EnforcePartLimits=ALL: a request larger than the node is refused at submit, not pending forever;
    # - MinJobAge=3600: finished jobs stay visible to squeue -t all (there is no sacct database);
    # - DefMemPerCPU: a job without --mem would otherwise take the whole node;
    # - gres with File=: a GPU gres without a device file puts the node in state INVAL.
    cat > "$CONF_DIR/slurm.conf" <<EOF
$MARK
ClusterName=spectralci
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
AuthType=auth/none
CredType=cred/none
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerParameters=batch_sched_delay=0,sched_interval=5,bf_interval=5
DependencyParameters=kill_invalid_depend
EnforcePartLimits=ALL
MinJobAge=3600
DefMemPerCPU=1024
MailProg=/bin/true
ReturnToService=2
SlurmdParameters=config_overrides
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$STATE/slurmctld.pidfile
SlurmdPidFile=$STATE/slurmd.pidfile
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
GresTypes=gpu
NodeName=$host NodeAddr=127.0.0.1 CPUs=$NODE_CPUS RealMemory=$NODE_MEMORY_MB Gres=gpu:${#FAKE_GPUS[@]} State=UNKNOWN
PartitionName=cpu Nodes=$host Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$host MaxTime=INFINITE State=UP
EOF
    log "wrote $CONF_DIR/slurm.conf and gres.conf (node $host: $NODE_CPUS CPUs, ${#FAKE_GPUS[@]} fake GPUs)"
}

alive() {  # alive PID NAME: the process exists, is NAME, and is not a zombie
    local pid="$1" name="$2"
    [[ -r "/proc/$pid/stat" ]] || return 1
    [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$name" ]] || return 1
    [[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]]
}

start() {
    install_slurm
    for daemon in slurmctld slurmd; do
        if [[ -f "$STATE/$daemon.pid" ]] && alive "$(cat "$STATE/$daemon.pid")" "$daemon"; then
            log "error: $daemon already running (PID $(cat "$STATE/$daemon.pid")); stop it first"
            exit 2
        fi
    done
    write_config
    # a throwaway cluster: no jobs or logs from an earlier start
    rm -rf "$STATE/ctld" "$STATE/slurmd" "$STATE"/*.log "$STATE"/*.out
    mkdir -p "$STATE/ctld" "$STATE/slurmd"
    slurmctld -D >>"$STATE/slurmctld.out" 2>&1 &
    echo $! > "$STATE/slurmctld.pid"
    slurmd -D >>"$STATE/slurmd.out" 2>&1 &
    echo $! > "$STATE/slurmd.pid"
    log "started slurmctld (PID $(cat "$STATE/slurmctld.pid")) and slurmd (PID $(cat "$STATE/slurmd.pid"))"
    local i
    for i in $(seq 1 60); do
        if scontrol ping 2>/dev/null | grep -q UP && sinfo -h -o '%T' 2>/dev/null | grep -qx idle; then
            log "node idle after $((i / 2)) s"
            sinfo
            return 0
        fi
        for daemon in slurmctld slurmd; do
            if ! alive "$(cat "$STATE/$daemon.pid")" "$daemon"; then
                log "error: $daemon died; its log:"
                tail -n 30 "$STATE/$daemon.log" "$STATE/$daemon.out" >&2 || true
                stop
                exit 1
            fi
        done
        sleep 0.5
    done
    log "error: node not idle after 30 s"
    sinfo >&2 || true
    tail -n 30 "$STATE/slurmctld.log" "$STATE/slurmd.log" >&2 || true
    stop
    exit 1
}

stop() {
    if [[ -f "$STATE/slurmctld.pid" ]] && alive "$(cat "$STATE/slurmctld.pid")" slurmctld; then
        scancel --user="$(id -un)" 2>/dev/null || true
    fi
    local daemon pid i
    for daemon in slurmd slurmctld; do
        [[ -f "$STATE/$daemon.pid" ]] || continue
        pid="$(cat "$STATE/$daemon.pid")"
        if alive "$pid" "$daemon"; then
            kill -TERM "$pid"
            for i in $(seq 1 50); do
                alive "$pid" "$daemon" || break
                sleep 0.2
            done
            if alive "$pid" "$daemon"; then
                log "$daemon (PID $pid) did not stop on SIGTERM; SIGKILL"
                kill -KILL "$pid" 2>/dev/null || true
            fi
            log "stopped $daemon (PID $pid)"
        fi
        rm -f "$STATE/$daemon.pid"
    done
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
