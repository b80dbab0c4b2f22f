/**
 * Runs `stop` once on the first SIGTERM or SIGINT (a second signal exits at once), so
 * in-flight work can finish before the process ends.
 */
export function onShutdownSignal(stop: (signal: NodeJS.Signals) => Promise<void>, log: (message: string) => void = () => {}): void {
  let stopping = false;
  const handle = (signal: NodeJS.Signals) => {
    if (stopping) {
      log(`second ${signal}: exiting now`);
      process.exit(130);
    }
    stopping = true;
    log(`${signal}: draining`);
    stop(signal).then(
      () => process.exit(0),
      (error: unknown) => {
        log(`shutdown failed: ${error instanceof Error ? error.message : String(error)}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', handle);
  process.on('SIGINT', handle);
}
