#!/usr/bin/env bash
# Quick start: installs, brings the stack up, applies the schedules and runs the workers of both
# services on the embedded defaults (SQLite Jobmon database in the cache, sacct for Slurm).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh
cli="node bin/jobmon-temporal.js"
$cli stack up
$cli migrate
$cli schedules apply
echo "Temporal UI: http://127.0.0.1:8233  (Ctrl-C stops the worker; 'jobmon-temporal stack down' stops the stack)"
# Human log lines in a terminal; production keeps the default, one JSON object per line.
LOG_FORMAT="${LOG_FORMAT:-pretty}" exec $cli worker
