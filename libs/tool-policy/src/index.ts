export * from './cedar-schema.js';
export * from './policy-set.js';
export * from './tool-policy.js';
export * from './call-digest.js';
export * from './claims-cedar-reads.js';
export * from './approval-annotation.js';
