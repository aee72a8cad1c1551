#!/usr/bin/env bash
# A throwaway single-node SLURM cluster on this machine, to run the README's SLURM commands
# for real (tests/test_slurm.py) without a cluster: munge, slurmctld and slurmd, all
# configured in one folder, talking over loopback only, started and stopped by this script.
#
#   eval "$(bash scripts/slurm_cluster.sh start /tmp/slurm)"   # prints: export SLURM_CONF=...
#   sbatch --wrap hostname; squeue                              # any SLURM client now works
#   python train.py -m +launcher=slurm hydra.launcher.partition=debug ...   (see README)
#   bash scripts/slurm_cluster.sh stop /tmp/slurm
#
# Needs the Debian packages slurm-wlm (slurmctld, slurmd, slurm-client) and munge
# (scripts/setup.sh installs them) and root (slurmd starts jobs as their user). Nothing is
# written outside the folder and no daemon of the machine is touched: own munge socket,
# own key, free ports picked at start, pid files in the folder; `stop` kills only the
# processes whose pids it wrote. Partition: "debug", one node (this host), all its CPUs.
set -euo pipefail

usage() { echo "usage: $0 start|stop|status DIR" >&2; exit 64; }
[[ $# -eq 2 ]] || usage
action=$1
dir=$(mkdir -p "$2" && cd "$2" && pwd)
conf="$dir/slurm.conf"

fail() { echo "slurm_cluster: $*" >&2; exit 1; }

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}


wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...: poll until COMMAND succeeds
  local seconds=$1 what=$2; shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

show_logs() {
  local f
  for f in "$dir"/log/*.log; do
    [[ -f $f ]] && { echo "---- $f (last 20 lines)"; tail -n 20 "$f"; }
  done >&2
  return 0
}

start() {
  [[ $(id -u) -eq 0 ]] || fail "must run as root (slurmd starts jobs as their user)"
  local missing=() cmd
  for cmd in munged slurmctld slurmd sbatch srun squeue scontrol; do
    command -v "$cmd" >/dev/null || missing+=("$cmd")
  done
  ((${#missing[@]} == 0)) || fail "not installed: ${missing[*]} (apt-get install slurm-wlm munge; scripts/setup.sh does)"
  if [[ -s $dir/slurmctld.pid ]] && kill -0 "$(cat "$dir/slurmctld.pid")" 2>/dev/null; then
    fail "a cluster is already running from $dir (stop it first: $0 stop $dir)"
  fi
  mkdir -p "$dir"/{munge,state,spool,log}
  chmod 700 "$dir" "$dir/munge"

  # munge: slurm's authentication, with its own key and socket in the folder.
  local socket="$dir/munge/munge.socket"
  dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
  chmod 600 "$dir/munge/munge.key"
  munged --force --socket="$socket" --key-file="$dir/munge/munge.key" \
    --pid-file="$dir/munged.pid" --log-file="$dir/log/munged.log" \
    --seed-file="$dir/munge/munged.seed" \
    || { show_logs; fail "munged did not start (log above)"; }
  wait_for 10 munge munge --socket="$socket" --no-input \
    || { show_logs; fail "munged does not answer on $socket"; }

  # The node is this host under its own name (jobs and Lightning resolve it), reached on
  # loopback; CPUs and memory as the machine has them.
  local node cpus mem_mb
  node=$(hostname -s)
  getent hosts "$node" >/dev/null || node=localhost
  cpus=$(getconf _NPROCESSORS_ONLN)  # not nproc: it obeys OMP_NUM_THREADS
  mem_mb=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
  cat >"$conf" <<EOF
# Written by scripts/slurm_cluster.sh: a single-node cluster on loopback.
ClusterName=handwriting
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/%n
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups, no accounting database: works in containers; sacct is unavailable, and
# submitit then follows jobs through their result files.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
InactiveLimit=0
KillWait=5
MinJobAge=300
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
  export SLURM_CONF=$conf
  slurmctld -f "$conf" || { show_logs; fail "slurmctld did not start (log above)"; }
  slurmd -f "$conf" -N "$node" || { show_logs; fail "slurmd did not start (log above)"; }
  if ! wait_for 30 "node idle" bash -c "sinfo -h -N -o %t | grep -qx idle"; then
    show_logs
    scontrol show node >&2 || true
    fail "the node did not become idle within 30 s (logs above)"
  fi
  echo "export SLURM_CONF=$conf"
}

stop() {
  export SLURM_CONF=$conf
  if [[ -f $conf ]]; then
    scancel --quiet --partition debug 2>/dev/null || true
  fi
  local name pid
  # slurmd first (it ends its job steps), then the controller, then munge; only the pids
  # this script's daemons wrote into the folder.
  for name in slurmd slurmctld munged; do
    [[ -s $dir/$name.pid ]] || continue
    pid=$(cat "$dir/$name.pid")
    kill -TERM "$pid" 2>/dev/null || continue
    wait_for 15 "$name to exit" bash -c "! kill -0 $pid" || kill -KILL "$pid" 2>/dev/null || true
  done
  rm -f "$dir"/{munged,slurmctld,slurmd}.pid
}

status() {
  export SLURM_CONF=$conf
  sinfo && squeue
}

case $action in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) usage ;;
esac
