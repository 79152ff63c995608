// A publisher in its own process. Usage:
//   publish-version.ts <registry root> <version> <tag> race <go file>
//     writes files derived from <tag>, prints "ready", waits until <go file>
//     exists, then commits; prints "published <manifest sha256>" or "exists".
//   publish-version.ts <registry root> <version> <tag> slow
//     writes a large weight file in chunks, printing "writing" after the first
//     (the test SIGKILLs it there).
import { existsSync } from 'node:fs';
import { open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ModelRegistry, isVersionExistsError } from '../index';
import { weightBytes } from './fixtures';

async function main(): Promise<void> {
  const [root, version, tag, mode, goFile] = process.argv.slice(2);
  const registry = await ModelRegistry.open(root);
  try {
    const record = await registry.publish({
      version,
      recipe: { method: 'test', tag },
      write: async (directory) => {
        await writeFile(join(directory, 'config.json'), JSON.stringify({ tag }));
        if (mode === 'race') {
          await writeFile(join(directory, 'model.safetensors'), weightBytes(tag, 256 * 1024));
          process.stdout.write('ready\n');
          while (!existsSync(goFile)) await new Promise((done) => setTimeout(done, 2));
          return;
        }
        const file = await open(join(directory, 'model.safetensors'), 'w');
        for (let chunk = 0; ; chunk++) {
          await file.write(weightBytes(`${tag}-${chunk}`, 1024 * 1024));
          if (chunk === 0) process.stdout.write('writing\n');
        }
      },
    });
    process.stdout.write(`published ${record.manifestSha256}\n`);
  } catch (error) {
    if (!isVersionExistsError(error)) throw error;
    process.stdout.write('exists\n');
  }
}

void main();
