export * from './check-table.js';
