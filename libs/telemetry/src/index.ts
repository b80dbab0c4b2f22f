export * from './setup.js';
export * from './logger.js';
export * from './nest-logger.js';
export * from './nats-headers.js';
export * from './trace-context.js';
export * from './scrub.js';
export * from './instruments.js';
