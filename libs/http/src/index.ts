export * from './http-listener.js';
export * from './request-signals.js';
