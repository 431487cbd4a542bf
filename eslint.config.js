// ESLint, type-aware (typescript-eslint), over everything tsc compiles. Formatting is Prettier's alone
// (eslint-config-prettier turns off the rules that would disagree with it).
import js from '@eslint/js';
import prettier from 'eslint-config-prettier';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['build/', 'dist/', 'docs/', 'node_modules/', '.scratch/', 'test/support/reporter.cjs'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: { allowDefaultProject: ['eslint.config.js'] }, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // Off: a store's methods (SessionStore, RevocationStore, and the tests' stand-ins) are async without awaiting so
      // that a synchronous throw becomes a rejection, as those contracts ask of every method.
      '@typescript-eslint/require-await': 'off',
      // SessionData is empty on purpose: apps augment it (declaration merging) to type their session's keys.
      '@typescript-eslint/no-empty-object-type': ['error', { allowInterfaces: 'always' }],
      // Names that start with _ are placeholders a destructuring must name to skip a position.
      '@typescript-eslint/no-unused-vars': ['error', { varsIgnorePattern: '^_', argsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_' }],
    },
  },
  {
    files: ['test/**/*.ts'],
    rules: {
      // Off in tests: they read supertest's res.body (typed any), and drive ctx.session by property access as untyped
      // koa-session apps and middleware (passport, koa-csrf) do; what they get is checked by assertions instead.
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
    },
  },
  prettier,
);
