import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', '.mandate/**', '.nx/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', setInterval: 'readonly', clearInterval: 'readonly', performance: 'readonly', TextEncoder: 'readonly', TextDecoder: 'readonly', Buffer: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      'no-restricted-properties': [
        'error',
        { object: 'it', property: 'only', message: 'a focused test hides the rest of the suite' },
        { object: 'describe', property: 'only', message: 'a focused test hides the rest of the suite' },
        { object: 'test', property: 'only', message: 'a focused test hides the rest of the suite' },
      ],
    },
  },
  {
    files: ['apps/**/*.ts'],
    rules: {
      // Nest resolves constructor parameters by @Inject token; decorated classes look unused to eslint.
      '@typescript-eslint/no-extraneous-class': 'off',
    },
  },
  {
    // Persistence only in store/: domain code talks to repositories, never to the store's collections.
    files: ['apps/*/src/domain/**/*.ts'],
    ignores: ['**/*.test.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: [
            {
              name: '@mandate/store',
              // The pure parts (the lease, the types of what repositories hand over) and the lease records repositories make.
              allowImportNames: ['Lease', 'LeaseRecords', 'HeldLease', 'StoredDocument', 'Change', 'Clock'],
              message: 'domain/ reaches persistence only through the repositories in store/',
            },
          ],
          patterns: [{ group: ['@mandate/store/*'], message: 'domain/ reaches persistence only through the repositories in store/' }],
        },
      ],
    },
  },
);
