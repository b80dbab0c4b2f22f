export * from './http-listener.js';
