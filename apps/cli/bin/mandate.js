#!/usr/bin/env node
// The `mandate` command as npm links it (`node_modules/.bin/mandate`, what `npx mandate` runs).
// It is this file in git, not `dist/main.js`, because npm skips a bin whose file is missing at
// install time: on a fresh clone nothing is built when `npm ci` runs, and the command was never
// linked. This file exists from the start and loads the build once there is one.
import { existsSync } from 'node:fs';

const entry = new URL('../dist/main.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write('✗ the mandate CLI is not built yet: run `npm run build` (or `npm start`, which builds first)\n');
  process.exit(1);
}
await import(entry.href);
