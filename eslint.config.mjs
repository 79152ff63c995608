// Lint for the whole workspace: typescript-eslint's recommended rules plus nx
// module boundaries that encode the architecture (see ../shared/ARCHITECTURE.md).
import js from '@eslint/js';
import nx from '@nx/eslint-plugin';
import tseslint from 'typescript-eslint';

export default [
  { ignores: ['**/node_modules/**', '**/dist/**', '**/gen/**', '**/.nx/**', '**/build/**', '**/*.d.ts'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts', '**/*.mjs', '**/*.js', '**/*.cjs'],
    plugins: { '@nx': nx },
    languageOptions: { globals: { process: 'readonly', console: 'readonly', __dirname: 'readonly', require: 'readonly', module: 'writable', Buffer: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', setInterval: 'readonly', clearInterval: 'readonly', setImmediate: 'readonly', URL: 'readonly', performance: 'readonly', AbortController: 'readonly', AbortSignal: 'readonly', TextEncoder: 'readonly', TextDecoder: 'readonly', structuredClone: 'readonly', queueMicrotask: 'readonly', WebAssembly: 'readonly', fetch: 'readonly' } },
    rules: {
      '@nx/enforce-module-boundaries': [
        'error',
        {
          enforceBuildableLibDependency: false,
          banTransitiveDependencies: false,
          allow: [],
          depConstraints: [
            // Generated code and gRPC wiring: depends on nothing of ours.
            { sourceTag: 'type:proto', onlyDependOnLibsWithTags: [] },
            // Telemetry: OpenTelemetry only.
            { sourceTag: 'type:telemetry', onlyDependOnLibsWithTags: [] },
            // The method as pure functions: no model, no gRPC.
            { sourceTag: 'type:method', onlyDependOnLibsWithTags: [] },
            // Compute backends and native kernels: tfjs only.
            { sourceTag: 'type:compute', onlyDependOnLibsWithTags: [] },
            // The model depends only on the compute library.
            { sourceTag: 'type:model', onlyDependOnLibsWithTags: ['type:compute'] },
            // Registry and run store: files only.
            { sourceTag: 'type:store', onlyDependOnLibsWithTags: [] },
            // Tasks and evaluation: the method's parsers.
            { sourceTag: 'type:tasks', onlyDependOnLibsWithTags: ['type:method'] },
            // The service kit: the contract and telemetry.
            { sourceTag: 'type:kit', onlyDependOnLibsWithTags: ['type:proto', 'type:telemetry'] },
            // Reports of runs (HTML, tables, comparisons): pure functions, nothing of ours.
            { sourceTag: 'type:report', onlyDependOnLibsWithTags: [] },
            // The benchmark suite (bench/): the model, its compute backend, telemetry.
            { sourceTag: 'type:bench', onlyDependOnLibsWithTags: ['type:model', 'type:compute', 'type:telemetry'] },
            // Apps are thin shells over libraries; apps never import apps.
            {
              sourceTag: 'type:app',
              onlyDependOnLibsWithTags: ['type:proto', 'type:telemetry', 'type:method', 'type:compute', 'type:model', 'type:store', 'type:tasks', 'type:kit', 'type:report', 'type:bench'],
            },
            // Cross-service tests and benchmarks may use any library, never an app's internals.
            {
              sourceTag: 'type:test',
              onlyDependOnLibsWithTags: ['type:proto', 'type:telemetry', 'type:method', 'type:compute', 'type:model', 'type:store', 'type:tasks', 'type:kit', 'type:report'],
            },
          ],
        },
      ],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    // CommonJS launchers (bin/*.js) load the TypeScript entry through tsx with require().
    files: ['**/bin/*.js'],
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    // Only libs/proto may import generated code.
    files: ['**/*.ts'],
    ignores: ['libs/proto/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['**/gen/**', '@cream/proto/*'], message: 'Generated code is reached through @cream/proto only.' },
          ],
        },
      ],
    },
  },
];
