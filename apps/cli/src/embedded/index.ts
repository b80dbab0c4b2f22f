/**
 * The embedded system's processes as `mandate up` starts them: nats-server and one Node process per
 * service. Exported (`@mandate/cli/embedded`) for the benchmark's deployed shape, which must start
 * the system exactly as users run it.
 */
export { startEmbeddedNats, type EmbeddedNats } from './nats-process.js';
export { discoverServices, startServiceProcess, type RunningServiceProcess, type ServiceApp } from './service-processes.js';
