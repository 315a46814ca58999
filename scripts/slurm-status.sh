#!/usr/bin/env bash
# One line per component of the local Slurm cluster: "name: up|down detail".
# Exit 0 only when all of munged, slurmdbd, slurmctld, slurmd and slurmrestd are up.
set -euo pipefail

REST_URL="http://127.0.0.1:${SLURM_REST_PORT:-6820}"
NODE=$(hostname -s)
all_up=0

# pid_of NAME PIDFILE: as in slurm-up.sh (stale pid files are ignored).
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

# report NAME OK DETAIL
report() {
  if [[ $2 == 1 ]]; then echo "$1: up $3"; else echo "$1: down $3"; all_up=1; fi
}

# munged: a credential must round-trip.
if pid=$(pid_of munged /run/munge/munged.pid); then
  if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
    report munged 1 "pid $pid"
  else
    report munged 0 "pid $pid but munge/unmunge fails"
  fi
else
  report munged 0 "no process"
fi

# slurmdbd: sacctmgr must get an answer from it.
if pid=$(pid_of slurmdbd /run/slurmdbd.pid); then
  if clusters=$(timeout 10 sacctmgr -n -P show cluster format=cluster 2>/dev/null); then
    report slurmdbd 1 "pid $pid, clusters: ${clusters//$'\n'/ }"
  else
    report slurmdbd 0 "pid $pid but not answering (see /var/log/slurm/slurmdbd.log)"
  fi
else
  report slurmdbd 0 "no process"
fi

# slurmctld: scontrol ping.
ctld_up=0
if pid=$(pid_of slurmctld /run/slurmctld.pid); then
  if timeout 10 scontrol ping 2>/dev/null | grep -q 'is UP'; then
    ctld_up=1
    report slurmctld 1 "pid $pid"
  else
    report slurmctld 0 "pid $pid but scontrol ping fails (see /var/log/slurm/slurmctld.log)"
  fi
else
  report slurmctld 0 "no process"
fi

# slurmd: process alive and, when slurmctld can tell, the node is usable.
if pid=$(pid_of slurmd /run/slurmd.pid); then
  if ((ctld_up)); then
    state=$(timeout 10 sinfo -h -N -n "$NODE" -o %T 2>/dev/null | head -n1 || true)
    if [[ $state =~ ^(idle|mixed|allocated|completing)$ ]]; then
      report slurmd 1 "pid $pid, node $NODE $state"
    else
      report slurmd 0 "pid $pid but node $NODE is '${state:-unknown}'"
    fi
  else
    report slurmd 1 "pid $pid, node state unknown (slurmctld down)"
  fi
else
  report slurmd 0 "no process"
fi

# slurmrestd: any HTTP answer counts (401 without a token is normal).
if pid=$(pid_of slurmrestd /run/slurmrestd.pid); then
  code=$(curl -s -o /dev/null -m 5 -w '%{http_code}' "$REST_URL/openapi/v3" || true)
  if [[ $code =~ ^[1-5][0-9][0-9]$ ]]; then
    report slurmrestd 1 "pid $pid, $REST_URL (HTTP $code without token)"
  else
    report slurmrestd 0 "pid $pid but no HTTP answer on $REST_URL"
  fi
else
  report slurmrestd 0 "no process"
fi

exit $all_up
