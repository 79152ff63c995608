// Tests run on the tfjs CPU backend (CREAM_BACKEND overrides): the model code is backend-agnostic, and the
// CPU kernels are deterministic, so batch-invariance can be checked bit for bit.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    setupFiles: ['./src/testing/setup-backend.ts'],
  },
});
