#!/usr/bin/env bash
# The reaper's soaks at length: the race soak (bench/reaper-soak.ts: reaps back to back against heartbeat
# writers, 10,000 per database) and the coexistence soak (bench/coexistence-soak.ts: the deployed services
# beside Jobmon-faithful writers, 10,000 rows reaped per database, through real Temporal).
# Usage: npm run soak [-- --iterations N] [-- --db pg|mysql|both]; COEXISTENCE_REAPS=N, COEXISTENCE_DB=pg|mysql|sqlite|servers|all
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh
cli="node bin/jobmon-temporal.js"
JOBMON_DB_URL=postgres://postgres@127.0.0.1:5432/test $cli stack up --no-slurm
JOBMON_DB_URL=mysql://root@127.0.0.1:3306/test $cli stack up --no-slurm
node dist/bench/reaper-soak.js "$@"
node dist/bench/coexistence-soak.js --reaps "${COEXISTENCE_REAPS:-10000}" --db "${COEXISTENCE_DB:-all}"
