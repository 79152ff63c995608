// Vitest settings for compute: the reference GEMM and finite-difference
// gradient checks are plain JS loops, and CI machines share their cores, so
// tests get more than the 5 s default before they count as hung.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    testTimeout: 60_000,
  },
});
