#!/usr/bin/env bash
# Benchmarks: the usage integrator (cost per integration, latency, Slurm requests) and the reaper at
# Jobmon scale, each against a baseline measured in the same run. Results go into BENCHMARKS.md.
# Usage: npm run bench [-- --quick]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh
cli="node bin/jobmon-temporal.js"
JOBMON_DB_URL=postgres://postgres@127.0.0.1:5432/test $cli stack up --no-slurm
JOBMON_DB_URL=mysql://root@127.0.0.1:3306/test $cli stack up --no-slurm
node dist/bench/usage-bench.js "$@"
for db in pg mysql; do node dist/bench/reaper-bench.js --db "$db"; done
