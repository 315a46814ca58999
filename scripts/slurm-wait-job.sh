#!/usr/bin/env bash
# Wait until a Slurm job has finished AND its accounting record is final:
# sacct shows a terminal state and an End time (accounting lags job end by seconds).
# Usage: slurm-wait-job.sh JOBID [TIMEOUT_SECONDS (default 120)]
# Exit 0 when final (whatever the job's outcome), 1 on timeout, 2 on bad usage.
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 || ! $1 =~ ^[0-9]+(_[0-9]+)?$ ]]; then
  echo "usage: $0 JOBID [TIMEOUT_SECONDS]" >&2
  exit 2
fi
job=$1
timeout=${2:-120}
deadline=$((SECONDS + timeout))
state='' end=''

while :; do
  # -X: the job allocation line only; -P: '|' separated. State may read "CANCELLED by 0".
  line=$(sacct -n -X -P -j "$job" -o State,End 2>/dev/null | head -n1 || true)
  state=${line%%|*}; state=${state%% *}
  end=${line#*|}
  case $state in
    COMPLETED|FAILED|CANCELLED|TIMEOUT|OUT_OF_MEMORY|NODE_FAIL|PREEMPTED|DEADLINE|BOOT_FAIL)
      if [[ -n $end && $end != Unknown && $end != None ]]; then
        echo "$job $state"
        exit 0
      fi ;;
  esac
  if ((SECONDS >= deadline)); then
    echo "slurm-wait-job: job $job not final after ${timeout}s (state '${state:-none}', end '${end:-none}')" >&2
    exit 1
  fi
  sleep 1   # poll gently: heavy sacct polling loads slurmdbd
done
