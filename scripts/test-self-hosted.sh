#!/usr/bin/env bash
# Issue 19's "Temporal as deployed" stage: the Temporal server (go.temporal.io/server, built once into the
# cache) on PostgreSQL with SQL visibility, and the tests in test/self-hosted/ against it. The rest of the
# stack (PostgreSQL, MariaDB, Slurm) comes up as for `npm test`; the shared dev server on 7233 is not used.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then export PATH="$PATH:/usr/local/go/bin"; fi
# npm test has just built and brought the stack up in CI (.ci/run sets SELF_HOSTED_SKIP_SETUP=1); run alone,
# this does both (quickly when warm).
if [ "${SELF_HOSTED_SKIP_SETUP:-}" != 1 ]; then
  bash scripts/ensure-deps.sh
  JOBMON_DB_URL=postgres://postgres@127.0.0.1:5432/test node bin/jobmon-temporal.js stack up
fi

start=$SECONDS
stop_server() { node dist/dev/stack/self-hosted-main.js down || true; }
trap stop_server EXIT
node dist/dev/stack/self-hosted-main.js up
TEMPORAL_ADDRESS=127.0.0.1:7243 npx ava --config ava.self-hosted.config.js "$@"
echo "self-hosted stage: $((SECONDS - start)) s"
