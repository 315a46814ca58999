#!/usr/bin/env bash
# The reaper's race soak at length (bench/reaper-soak.ts): both databases, 10,000 reaps each by default.
# Usage: npm run soak [-- --iterations N] [-- --db pg|mysql|both]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh
cli="node bin/jobmon-temporal.js"
JOBMON_DB_URL=postgres://postgres@127.0.0.1:5432/test $cli stack up --no-slurm
JOBMON_DB_URL=mysql://root@127.0.0.1:3306/test $cli stack up --no-slurm
node dist/bench/reaper-soak.js "$@"
