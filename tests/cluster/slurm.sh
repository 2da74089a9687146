#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, for the cluster tests (tests/cluster/test_slurm.py).
#
#   tests/cluster/slurm.sh start   install Debian's Slurm + MUNGE if needed, start the daemons
#   tests/cluster/slurm.sh stop    stop the daemons this script started (by their pidfiles)
#
# Needs root on Debian (apt-get). No systemd: munged, slurmctld and slurmd are started
# directly, each writing a pidfile under $SNAKEFLOW_SLURM_DIR, and `stop` ends exactly those.
# The config goes to /etc/slurm/slurm.conf, where srun inside jobs looks for it; a
# slurm.conf that this script did not write is never overwritten.
set -euo pipefail

DIR=${SNAKEFLOW_SLURM_DIR:-/tmp/snakeflow-slurm}
CONF=/etc/slurm/slurm.conf
MARK="# written by snakeflow tests/cluster/slurm.sh"

install_packages() {
  command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null \
    && command -v sbatch >/dev/null && return 0
  echo "slurm.sh: installing slurmctld slurmd slurm-client munge" >&2
  # keep the packages' maintainer scripts from starting daemons
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' RETURN
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurmctld slurmd slurm-client munge >/dev/null
}

start_munge() {
  if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
  fi
  chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
  mkdir -p /run/munge /var/lib/munge /var/log/munge "$DIR/munge"
  chown munge:munge /run/munge /var/lib/munge /var/log/munge "$DIR/munge"
  if [ -s "$DIR/munge/munged.pid" ] && kill -0 "$(cat "$DIR/munge/munged.pid")" 2>/dev/null; then
    return 0
  fi
  su -s /bin/sh munge -c "munged --pid-file=$DIR/munge/munged.pid --force" </dev/null
  for _ in $(seq 50); do [ -S /run/munge/munge.socket.2 ] && return 0; sleep 0.1; done
  echo "slurm.sh: munged did not start" >&2
  return 1
}

write_conf() {
  local cpus mem
  cpus=$(nproc)
  mem=$(( $(free -m | awk '/^Mem:/ {print $2}') - 1024 ))
  mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log" /etc/slurm
  if [ -e "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
    echo "slurm.sh: $CONF exists and was not written by this script; not touching it" >&2
    return 1
  fi
  cat > "$CONF" <<CONF
$MARK
ClusterName=snakeflow
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MinJobAge=300
ReturnToService=2
SchedulerType=sched/backfill
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=main Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
}

start() {
  install_packages
  mkdir -p "$DIR"
  start_munge
  write_conf
  if ! { [ -s "$DIR/slurmctld.pid" ] && kill -0 "$(cat "$DIR/slurmctld.pid")" 2>/dev/null; }; then
    slurmctld -f "$CONF" </dev/null
  fi
  if ! { [ -s "$DIR/slurmd.pid" ] && kill -0 "$(cat "$DIR/slurmd.pid")" 2>/dev/null; }; then
    slurmd -f "$CONF" </dev/null
  fi
  for _ in $(seq 60); do
    if sinfo -h -o %t 2>/dev/null | grep -qx idle; then
      echo "slurm.sh: cluster up ($(sinfo -h -o '%D node(s), %c CPUs, %m MB'))" >&2
      return 0
    fi
    sleep 0.5
  done
  echo "slurm.sh: the node did not become idle; logs in $DIR/log" >&2
  tail -n 20 "$DIR/log/"*.log >&2 || true
  return 1
}

stop() {
  for pidfile in "$DIR/slurmd.pid" "$DIR/slurmctld.pid" "$DIR/munge/munged.pid"; do
    if [ -s "$pidfile" ]; then
      kill "$(cat "$pidfile")" 2>/dev/null || true
      rm -f "$pidfile"
    fi
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
