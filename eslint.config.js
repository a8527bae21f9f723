// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import folderCycles from './lint/folder-cycles.mjs';

const ioModules = [
  'net',
  'tls',
  'http',
  'https',
  'http2',
  'fs',
  'fs/promises',
  'child_process',
  'dgram',
  'dns',
  'dns/promises',
  'cluster',
  'worker_threads',
  'process',
];
const ioPaths = ioModules
  .flatMap((m) => [`node:${m}`, m])
  .map((name) => ({ name, message: 'pure module: no I/O here (inject it instead)' }));
const ioPackages = ['undici', 'better-sqlite3', 'pino', 'prom-client'].map((name) => ({
  name,
  message: 'pure module: no I/O libraries here',
}));

/** Folders that hold pure logic: parsing, classification, correlation, policies. */
const pureFolders = [
  'protocol/**/*.ts',
  'common/cidr/**/*.ts',
  'common/config/**/*.ts',
  'agent/aws/**/*.ts',
  'agent/net/**/*.ts',
  'agent/config/**/*.ts',
  'agent/observe/model/**/*.ts',
  'common/delivery/retry-policy.ts',
  'detector/correlate/**/*.ts',
  'detector/config/**/*.ts',
  'detector/guardduty/decide.ts',
  'detector/securityhub/asff.ts',
  'detector/securityhub/import-outcome.ts',
];

export default tseslint.config(
  { ignores: ['dist/**', 'coverage/**', 'node_modules/**', 'bench/results/**', 'docs/**', 'eslint.config.js'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowBoolean: true, allowNullish: true }],
      'no-restricted-globals': ['error', { name: 'process', message: 'only cli/ and the main.ts files touch process' }],
    },
  },
  {
    files: [
      'cli/**/*.ts',
      '**/main.ts',
      'common/runtime/daemon.ts',
      'bench/**/*.ts',
      'test/**/*.ts',
      'eslint.config.js',
      'vitest.config.ts',
    ],
    rules: { 'no-restricted-globals': 'off' },
  },
  {
    files: ['agent/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [{ group: ['**/detector/**', '**/cli/**'], message: 'agent/ never imports detector/ or cli/' }] },
      ],
    },
  },
  {
    files: ['detector/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [{ group: ['**/agent/**', '**/cli/**'], message: 'detector/ never imports agent/ or cli/' }] },
      ],
    },
  },
  {
    files: ['protocol/**/*.ts', 'common/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/agent/**', '**/detector/**', '**/cli/**'],
              message: 'protocol/ and common/ depend on nothing of ours but each other',
            },
          ],
        },
      ],
    },
  },
  {
    files: pureFolders,
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: [...ioPaths, ...ioPackages],
          patterns: [
            { group: ['**/cli/**', '**/store/**', '**/proxy/**', '**/ingest/**'], message: 'pure modules import only pure modules' },
          ],
        },
      ],
    },
  },
  {
    files: ['agent/**/*.ts', 'detector/**/*.ts', 'protocol/**/*.ts', 'common/**/*.ts', 'cli/**/*.ts'],
    plugins: { 'egress-witness': folderCycles },
    rules: { 'egress-witness/no-folder-cycle': 'error' },
  },
  {
    // The install-time build script and the lint rules: plain JavaScript, outside the TypeScript project.
    files: ['native/**/*.mjs', 'lint/**/*.mjs'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: { ...tseslint.configs.disableTypeChecked.languageOptions, globals: { process: 'readonly', console: 'readonly' } },
    rules: { ...tseslint.configs.disableTypeChecked.rules, 'no-restricted-globals': 'off' },
  },
  {
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/unbound-method': 'off',
    },
  },
);
