import { createServer } from 'node:net';
import { CliError } from '../output.js';

/** One port `mandate up` will listen on, and the flag that moves it. */
export interface PortUse {
  port: number;
  host: string;
  /** The `mandate up` option that sets it, e.g. `--metrics-port`. */
  flag: string;
  /** How this port follows from the flag when it is not the flag's value itself, e.g. `9464 + 2: the vault's metrics`. */
  note?: string;
}

const described = (use: PortUse) => `${use.flag}${use.note ? ` ${use.note}` : ''}`;

/** A port `mandate up` needs is taken: one line naming the flag that moves it. */
export class PortInUseError extends CliError {
  constructor(readonly use: PortUse) {
    super(`port ${use.port} (${described(use)}) is in use: choose another with ${use.flag}`);
  }
}

/**
 * Refuses, before anything starts, a port that is taken or given twice, so the user reads one
 * line naming the flag instead of a child's stack trace. Port 0 means "off" and is skipped.
 */
export async function checkPortsFree(uses: readonly PortUse[]): Promise<void> {
  const seen = new Map<number, PortUse>();
  for (const use of uses.filter((u) => u.port !== 0)) {
    const earlier = seen.get(use.port);
    if (earlier) throw new CliError(`port ${use.port} is given to both ${described(earlier)} and ${described(use)}: choose another with ${use.flag}`);
    seen.set(use.port, use);
  }
  for (const use of seen.values()) {
    const problem = await tryListen(use.port, use.host);
    if (problem === 'EADDRINUSE') throw new PortInUseError(use);
    if (problem === 'EACCES') throw new CliError(`port ${use.port} (${described(use)}) may not be opened by this user: choose another with ${use.flag}`);
    if (problem) throw new CliError(`port ${use.port} (${described(use)}) cannot be opened on ${use.host} (${problem}): choose another with ${use.flag}, or check the host`);
  }
}

/** Listens and closes again: undefined if the port could be opened, else the error code. */
function tryListen(port: number, host: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(undefined)));
  });
}
