import { defineConfig } from 'taskvault';

// TaskVault's own config: a living example of the format. Try `npx taskvault run build` twice.
export default defineConfig({
  cacheDir: '.taskvault/cache',
  maxSizeGb: 2,
  hashAlgorithm: 'blake3',
  policies: {
    default: { ttlSeconds: '7d', maxSizeBytes: '200MB' },
  },
  tasks: {
    // TaskVault compiling itself: src/ in, dist/ out.
    build: {
      command: ['node', 'node_modules/typescript/bin/tsc', '-p', 'tsconfig.json'],
      inputs: ['src/**', 'tsconfig.json', 'package.json'],
      outputs: ['dist/**'],
    },
    typecheck: {
      command: ['node', 'node_modules/typescript/bin/tsc', '-p', 'tsconfig.check.json'],
      inputs: ['src/**', 'test/**', 'bench/**', 'tsconfig*.json', 'taskvault.config.ts'],
    },
    // The demo fixture: aggregates a CSV into fixtures/csv-report/out/.
    report: {
      command: 'node src/aggregate.mjs data/sales.csv out',
      cwd: 'fixtures/csv-report',
      inputs: ['src/**', 'data/**'],
      outputs: ['out/**'],
      env: ['REPORT_WORK_MS'],
    },
  },
});
