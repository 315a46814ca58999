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

# Debian's Chromium for the browser test (test/demo-ui.test.ts, driven by playwright-core): a browser is
# never downloaded. Quiet when present; a failed install only warns (npm start does not need it).
if [ ! -x /usr/bin/chromium ]; then
  echo "ensure-deps: apt-get install chromium (for the browser test)"
  if ! { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }; }; then
    echo "ensure-deps: could not install Debian's chromium: test/demo-ui.test.ts will fail until it is installed" >&2
  fi
fi

# promtool (Debian's prometheus package) checks and unit-tests the alert rules (test/monitoring-rules.test.ts).
# Without recommends: no node exporter. The package's own server is not needed; where an init system
# starts it, it listens on 9090, a port no test uses.
if ! command -v promtool >/dev/null; then
  echo "ensure-deps: apt-get install prometheus (promtool, for the alert-rule tests)"
  if ! { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }; }; then
    echo "ensure-deps: could not install Debian's prometheus: test/monitoring-rules.test.ts will fail until promtool is installed" >&2
  fi
fi

# kubectl (its built-in kustomize renders deploy/ in test/deploy-manifests.test.ts). This project's machines
# have it as the Debian package `kubectl` from Google's Cloud SDK repository, which Debian itself does not
# carry: install it where that source is configured, else say so. The manifest tests fail (never skip)
# without it; npm start does not need it.
if ! command -v kubectl >/dev/null; then
  echo "ensure-deps: apt-get install kubectl (for the manifest tests)"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kubectl >/dev/null 2>&1; then
    echo "ensure-deps: kubectl is missing and no configured apt source has it: test/deploy-manifests.test.ts will fail until kubectl (>= 1.27, with kustomize) is on PATH" >&2
  fi
fi

echo "ensure-deps: build"
npm run build --silent
