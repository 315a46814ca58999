#!/usr/bin/env bash
# Installs what this project needs on a fresh machine of its kind, then builds it. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

need_node_major=20
if ! command -v node >/dev/null || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt "$need_node_major" ]; then
  echo "ensure-deps: Node.js >= 20.3 is required (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi
if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then export PATH="$PATH:/usr/local/go/bin"; fi

# npm ci only when the lockfile changed since the last install: a warm run skips it.
stamp=node_modules/.package-lock.stamp
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
  echo "ensure-deps: npm ci"
  npm ci --no-audit --no-fund
  cp package-lock.json "$stamp"
fi

echo "ensure-deps: build"
npm run build --silent
