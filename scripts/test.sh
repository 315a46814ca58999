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
npx prettier --check .

# Two runs. The main one: every test file but test/serial/, concurrently (package.json's ava.files).
# Then test/serial/ alone (ava.serial.config.js): those tests fail a Slurm node, which kills every job on
# it, so nothing else may run meanwhile. Arguments: flags go to both runs; test files named go to the run
# that holds them, and a run none of them belongs to is skipped (`npm test -- dist/test/config.test.js`
# runs that file only). Give a flag's value with `=` (`--match='*NODE_FAIL*'`).
main=() serial=() flags=()
for arg in "$@"; do
  case $arg in
    -*) flags+=("$arg") ;;
    *test/serial/*) serial+=("$arg") ;;
    *) main+=("$arg") ;;
  esac
done
all=$(( ${#main[@]} + ${#serial[@]} == 0 ))
status=0
if (( all || ${#main[@]} > 0 )); then
  npx ava ${flags[@]+"${flags[@]}"} ${main[@]+"${main[@]}"} || status=$?
fi
if (( all || ${#serial[@]} > 0 )); then
  npx ava --config ava.serial.config.js ${flags[@]+"${flags[@]}"} ${serial[@]+"${serial[@]}"} || status=$?
fi
exit "$status"
