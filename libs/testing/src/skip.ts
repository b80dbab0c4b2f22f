import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { findNatsServer } from './nats-server.js';

/**
 * A test that needs something absent is skipped with a printed reason, never silently passed.
 * Reasons also go to `$MANDATE_SKIP_LOG` so the test command can list them at the end.
 */
export function skipReason(what: string, reason: string): string {
  const line = `skipped: ${what}: ${reason}`;
  console.warn(line);
  const log = process.env['MANDATE_SKIP_LOG'];
  if (log) {
    mkdirSync(dirname(log), { recursive: true });
    appendFileSync(log, `${line}\n`);
  }
  return line;
}

/** `undefined` when nats-server is here; otherwise the printed reason to skip. */
export function natsServerMissing(what: string): string | undefined {
  return findNatsServer() ? undefined : skipReason(what, 'nats-server is not installed (apt-get install nats-server)');
}
