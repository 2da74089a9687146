#!/usr/bin/env bash
# A single-node Grid Engine (Son of Grid Engine, Debian's gridengine-*) on this machine, for
# the cluster tests (tests/cluster/test_sge.py). See ../shared/notes/gridengine-single-node.md.
#
#   tests/cluster/sge.sh start   install the packages if needed, start qmaster and execd,
#                                configure a queue all.q with a parallel environment smp
#   tests/cluster/sge.sh stop    stop the two daemons this script started (by their pids)
#
# Needs root on Debian (apt-get); no systemd. Clients need SGE_ROOT and SGE_CELL (printed by
# `start` as shell assignments). The scheduler runs every second (default: 15 s).
set -euo pipefail

export SGE_ROOT=/var/lib/gridengine SGE_CELL=default
DIR=${SNAKEFLOW_SGE_DIR:-/tmp/snakeflow-sge}
HOST=$(hostname)
COMMON=$SGE_ROOT/$SGE_CELL/common

install_packages() {
  command -v qsub >/dev/null && [ -x /usr/sbin/sge_qmaster ] && [ -x /usr/sbin/sge_execd ] \
    && return 0
  echo "sge.sh: installing gridengine-master gridengine-exec gridengine-client" >&2
  debconf-set-selections <<SEL
gridengine-master shared/gridenginemaster string $HOST
gridengine-common shared/gridenginecell string default
gridengine-common shared/gridengineconfig boolean true
gridengine-client shared/gridengineconfig boolean true
SEL
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d  # no daemon started by the packages
  chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' RETURN
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gridengine-master gridengine-exec \
    gridengine-client >/dev/null
}

pid_of() {  # the pid a daemon wrote, if it still runs
  local file=$1
  [ -s "$file" ] && kill -0 "$(cat "$file")" 2>/dev/null && cat "$file"
}


spool_dir() {  # where the daemons keep their pid files (the packages' bootstrap file says)
  awk -v key="$1" '$1 == key {print $2}' "$COMMON/bootstrap" 2>/dev/null
}

qmaster_pid() { pid_of "$(spool_dir qmaster_spool_dir)/qmaster.pid"; }
execd_pid() {  # under the host's alias (localhost)
  local file
  local dir
  dir=$(qconf -sconf global 2>/dev/null | awk '$1 == "execd_spool_dir" {print $2}')
  for file in "${dir:-/var/spool/gridengine/execd}"/*/execd.pid; do
    pid_of "$file" && return 0
  done
  return 1
}

configure() {
  mkdir -p "$DIR"
  qconf -as "$HOST" >/dev/null 2>&1 || true
  cat > "$DIR/host" <<CONF
hostname $HOST
load_scaling NONE
complex_values NONE
user_lists NONE
xuser_lists NONE
projects NONE
xprojects NONE
usage_scaling NONE
report_variables NONE
CONF
  qconf -se "$HOST" >/dev/null 2>&1 || qconf -Ae "$DIR/host" >/dev/null
  qconf -sconf global > "$DIR/global"
  sed -i -e 's/^min_uid .*/min_uid 0/' -e 's/^min_gid .*/min_gid 0/' "$DIR/global"
  mkdir -p "$DIR/conf" && cp "$DIR/global" "$DIR/conf/global"
  qconf -Mconf "$DIR/conf/global" >/dev/null
  qconf -ssconf > "$DIR/sched"
  sed -i 's/^schedule_interval .*/schedule_interval 0:0:1/' "$DIR/sched"
  qconf -Msconf "$DIR/sched" >/dev/null
  cat > "$DIR/smp" <<CONF
pe_name            smp
slots              999
user_lists         NONE
xuser_lists        NONE
start_proc_args    NONE
stop_proc_args     NONE
allocation_rule    \$pe_slots
control_slaves     FALSE
job_is_first_task  TRUE
urgency_slots      min
accounting_summary FALSE
qsort_args         NONE
CONF
  qconf -sp smp >/dev/null 2>&1 || qconf -Ap "$DIR/smp" >/dev/null
  cat > "$DIR/all.q" <<CONF
qname                 all.q
hostlist              $HOST
seq_no                0
load_thresholds       NONE
suspend_thresholds    NONE
nsuspend              1
suspend_interval      00:05:00
priority              0
min_cpu_interval      00:05:00
processors            UNDEFINED
qtype                 BATCH INTERACTIVE
ckpt_list             NONE
pe_list               smp
rerun                 FALSE
slots                 $(nproc)
tmpdir                /tmp
shell                 /bin/bash
prolog                NONE
epilog                NONE
shell_start_mode      unix_behavior
starter_method        NONE
suspend_method        NONE
resume_method         NONE
terminate_method      NONE
notify                00:00:60
owner_list            NONE
user_lists            NONE
xuser_lists           NONE
subordinate_list      NONE
complex_values        NONE
projects              NONE
xprojects             NONE
calendar              NONE
initial_state         default
s_rt                  INFINITY
h_rt                  INFINITY
s_cpu                 INFINITY
h_cpu                 INFINITY
s_fsize               INFINITY
h_fsize               INFINITY
s_data                INFINITY
h_data                INFINITY
s_stack               INFINITY
h_stack               INFINITY
s_core                INFINITY
h_core                INFINITY
s_rss                 INFINITY
h_rss                 INFINITY
s_vmem                INFINITY
h_vmem                INFINITY
CONF
  qconf -sq all.q >/dev/null 2>&1 || qconf -Aq "$DIR/all.q" >/dev/null
}

start() {
  install_packages
  grep -qx "$HOST localhost" "$COMMON/host_aliases" 2>/dev/null \
    || echo "$HOST localhost" >> "$COMMON/host_aliases"
  if [ -z "$(qmaster_pid || true)" ]; then
    /usr/sbin/sge_qmaster
    for _ in $(seq 100); do qstat >/dev/null 2>&1 && break; sleep 0.2; done
  fi
  configure
  if [ -z "$(execd_pid || true)" ]; then
    /usr/sbin/sge_execd  # reads min_uid at start: after configure
  fi
  qmod -cq all.q >/dev/null 2>&1 || true
  for _ in $(seq 100); do
    if qstat -f -q all.q 2>/dev/null | grep -q "^all.q@" && ! qstat -f -q all.q | grep -qE " (au|E|d)\s*$"; then
      echo "sge.sh: Grid Engine up ($(nproc) slots on $HOST)" >&2
      echo "SGE_ROOT=$SGE_ROOT SGE_CELL=$SGE_CELL"
      return 0
    fi
    sleep 0.3
  done
  echo "sge.sh: the queue did not come up:" >&2
  qstat -f >&2 || true
  return 1
}

stop() {
  local pid
  for pid in "$(execd_pid || true)" "$(qmaster_pid || true)"; do
    if [ -n "$pid" ]; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
