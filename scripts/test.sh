#!/usr/bin/env bash
# The README's test command: installs what is missing, brings the whole real stack up
# (Temporal dev server, PostgreSQL, MariaDB, Slurm), then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh
if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then export PATH="$PATH:/usr/local/go/bin"; fi

cli="node bin/jobmon-temporal.js"
# The test databases: both server databases must answer (tests create their own databases in them).
JOBMON_DB_URL=postgres://postgres@127.0.0.1:5432/test $cli stack up --no-slurm
JOBMON_DB_URL=mysql://root@127.0.0.1:3306/test $cli stack up
$cli stack status

npx eslint .
npx ava "$@"
