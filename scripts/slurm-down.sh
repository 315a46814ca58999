#!/usr/bin/env bash
# Stop the single-node Slurm cluster started by slurm-up.sh: slurmrestd, slurmd,
# slurmctld, slurmdbd (in that order). munged and MariaDB are left running (shared).
# State (jobs, accounting) is kept: slurmctld saves it on SIGTERM, accounting is in MariaDB.
set -euo pipefail

[[ $(id -u) -eq 0 ]] || { echo "slurm-down: must run as root" >&2; exit 1; }

# pid_of NAME PIDFILE: pid of the running daemon; a stale pid file (after kill -9) is
# ignored because the pid must belong to that program. No name matching: another
# slurmrestd (other port) must not count as ours.
pid_of() {
  local name=$1 pidfile=$2 pid
  if [[ -s $pidfile ]]; then
    pid=$(tr -dc '0-9' <"$pidfile" 2>/dev/null || true)
    if [[ -n $pid ]] && running "$pid" "$name"; then echo "$pid"; return 0; fi
  fi
  return 1
}
# running PID NAME: PID exists, is program NAME and is not a zombie (just killed).
running() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  [[ $(cat "/proc/$1/comm" 2>/dev/null) == "$2" && ${stat##*) } != Z* ]]
}

# stop NAME PIDFILE: SIGTERM, wait up to 30 s for a clean exit (state save), then SIGKILL.
stop() {
  local name=$1 pidfile=$2 pid i
  if ! pid=$(pid_of "$name" "$pidfile"); then
    echo "slurm-down: $name not running"
    rm -f "$pidfile"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 300; i++)); do
    if ! running "$pid" "$name"; then
      echo "slurm-down: stopped $name (pid $pid)"
      rm -f "$pidfile"
      return 0
    fi
    sleep 0.1
  done
  echo "slurm-down: $name (pid $pid) ignored SIGTERM for 30s; killing it" >&2
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$pidfile"
}

stop slurmrestd /run/slurmrestd.pid
stop slurmd     /run/slurmd.pid
stop slurmctld  /run/slurmctld.pid
stop slurmdbd   /run/slurmdbd.pid
