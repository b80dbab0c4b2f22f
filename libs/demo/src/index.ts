export * from './authorization-server.js';
export * from './demo-authorization-server.js';
export * from './demo-users.js';
export * from './resource-servers.js';
export * from './sample-api-documents.js';
export * from './scripted-sign-in.js';
export * from './signing-keys.js';
