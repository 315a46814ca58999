#!/usr/bin/env bash
# Benchmarks of issue #11 (bench/bench.ts): throughput against Temporal's ceiling, Slurm load, latency
# at the real defaults, Temporal cost per integration, the reaper at Jobmon scale, worker memory and
# scale-out. Prints the tables, writes BENCHMARKS.md and bench/results/latest.json.
# Usage: npm run bench [-- --quick] [-- --only b1,b5] [-- --server own|shared]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh
cli="node bin/jobmon-temporal.js"
# With Slurm: the benchmark calibrates its slurmrestd stand-in against the real slurmrestd.
JOBMON_DB_URL=postgres://postgres@127.0.0.1:5432/test $cli stack up
JOBMON_DB_URL=mysql://root@127.0.0.1:3306/test $cli stack up --no-slurm
node dist/bench/bench.js "$@"
