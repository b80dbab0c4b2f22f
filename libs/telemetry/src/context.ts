/**
 * Trace context only (W3C `traceparent` in NATS headers), without the OpenTelemetry SDK: what a
 * bus client needs. Importing this instead of the package root keeps short-lived processes (the
 * CLI) from loading the exporters.
 */
export * from './trace-context.js';
export * from './nats-headers.js';
