// Lint: typescript-eslint's recommended type-aware rules, plus the layer rules of DESIGN.md written as
// import restrictions (storage knows nothing of repository; engines know nothing of the repository,
// recovery, cli or server; and so on).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/** Folders of src/ and the folders each one must not import from. */
const LAYERS = {
  util: ['config', 'storage', 'repository', 'engines', 'recovery', 'server', 'cli'],
  storage: ['config', 'repository', 'engines', 'recovery', 'server', 'cli'],
  repository: ['config', 'engines', 'recovery', 'server', 'cli'],
  engines: ['config', 'storage', 'repository', 'recovery', 'server', 'cli'],
  config: ['storage', 'repository', 'recovery', 'server', 'cli'],
  recovery: ['server', 'cli'],
  server: ['cli'],
  cli: ['server'],
};

const layerRules = Object.entries(LAYERS).map(([layer, forbidden]) => ({
  files: [`src/${layer}/**/*.ts`],
  rules: {
    'no-restricted-imports': [
      'error',
      {
        patterns: forbidden.map((target) => ({
          group: [`**/${target}`, `**/${target}/**`, `!./**`],
          message: `src/${layer} must not import from src/${target} (layers: see DESIGN.md).`,
        })),
      },
    ],
  },
}));

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', 'bin/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        projectService: { allowDefaultProject: ['*.js', '*.config.ts', 'scripts/*.mjs'] },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-console': 'error',
    },
  },
  ...layerRules,
  {
    files: ['test/**/*.ts', 'bench/**/*.ts', '**/*.test.ts'],
    rules: { 'no-console': 'off', '@typescript-eslint/no-non-null-assertion': 'off' },
  },
  { files: ['*.js', '*.config.ts'], ...tseslint.configs.disableTypeChecked },
  // Small benchmark scripts run by hand with node: untyped, printing their figures.
  {
    files: ['bench/*.mjs'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: {
      globals: { process: 'readonly', console: 'readonly' },
      parserOptions: { projectService: false, project: null },
    },
    rules: { ...tseslint.configs.disableTypeChecked.rules, 'no-console': 'off' },
  },
);
