export * from './nats-server.js';
export * from './skip.js';
