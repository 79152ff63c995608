// Durable file writes for checkpoints: a file's bytes fsynced before it is
// closed, and a directory fsynced so the names in it (a rename) survive a crash.
import { open } from 'node:fs/promises';

/** Writes `data` to `file` (replacing it) and fsyncs it. */
export async function writeFileSynced(file: string, data: string | Uint8Array): Promise<void> {
  const handle = await open(file, 'w');
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** fsyncs a directory, making the creations and renames inside it durable (POSIX). */
export async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
