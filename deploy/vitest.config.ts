// The deploy checks render kustomize trees and start the CLI as a container would: give them time,
// and run files one at a time (2 cores; a service process per smoke test).
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    fileParallelism: false,
  },
});
