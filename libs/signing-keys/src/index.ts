export * from './signing-key-ring.js';
export * from './stored-ring.js';
