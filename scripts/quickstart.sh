#!/usr/bin/env bash
# npm start: installs and builds what is missing, then runs `jobmon-temporal dev`: both services live on a
# simulated Jobmon on Slurm, on the embedded defaults (SQLite Jobmon database in the cache, the local
# Slurm cluster, else a simulated slurmrestd). Ctrl-C stops everything it started.
# Options are passed on: `npm start -- --simulated-slurm`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh
if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then export PATH="$PATH:/usr/local/go/bin"; fi
exec node bin/jobmon-temporal.js dev "$@"
