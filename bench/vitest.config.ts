// The bench tests spawn python (the baseline's argument checks): give them time.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    testTimeout: 60_000,
  },
});
