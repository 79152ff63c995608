// Runs when `node-gyp rebuild` of the native GEMM addon failed during install:
// explains what that means, leaves a note that the runtime loader quotes in
// its warning (npm hides the output of install scripts that succeed), and
// exits 0, so a machine without a compiler (or another CPU) still installs and
// runs on the tfjs wasm backend without the native kernels.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

const note =
  'the native GEMM addon did not build during install (node-gyp rebuild failed: no C++17 compiler, ' +
  'python3 or make, or Node headers not found; set npm config nodedir to a tree with include/node). ' +
  'Compute falls back to the wasm backend without native kernels. Rebuild with `npm run install -w @cream/compute` from the repository root.';

process.stderr.write(`\n@cream/compute: ${note}\n\n`);
try {
  const buildDir = path.join(here, '..', 'build');
  fs.mkdirSync(buildDir, { recursive: true });
  fs.writeFileSync(path.join(buildDir, 'native-build-failed.txt'), `${new Date().toISOString()} ${note}\n`);
} catch {
  // The note is a courtesy; the install must succeed without it.
}
process.exit(0);
