import { defineConfig } from 'vitest/config';

/*
 * Workspace packages resolve to their TypeScript sources through the `mandate-source` export
 * condition, so tests never run against a stale build. (Not `source`: some published packages
 * export TypeScript under that name, which Node cannot load from node_modules.)
 */
export default defineConfig({
  resolve: { conditions: ['mandate-source'] },
  ssr: { resolve: { conditions: ['mandate-source'], externalConditions: ['mandate-source'] } },
  test: {
    include: ['apps/*/src/**/*.test.ts', 'libs/*/src/**/*.test.ts', 'test/**/*.test.ts', 'examples/**/*.test.ts'],
    environment: 'node',
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 60_000,
    setupFiles: ['reflect-metadata'],
    server: { deps: { inline: [/@mandate\//] } },
  },
});
