/**
 * The bus without the NestJS service side: connection, typed requests, JetStream streams and
 * publishing. For clients (the CLI, agents, scripts) that should start fast.
 */
export * from './connection.js';
export * from './client.js';
export * from './jetstream.js';
export * from './publisher.js';
export * from './shutdown.js';
export * from './acked-publish.js';
export * from './on-event.js';
