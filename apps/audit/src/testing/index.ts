export * from './harness.js';
export * from './stored-trail.js';
