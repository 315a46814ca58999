#!/usr/bin/env node
// Entry point of the `jobmon-temporal` command: the compiled CLI (npm run build).
import '../dist/scripts/cli.js';
