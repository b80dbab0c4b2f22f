export * from './verifier.js';
export * from './client-assertion.js';
