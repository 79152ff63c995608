// Random tiny model versions for cross-service tests: a small Llama config and
// a helper that writes seeded random checkpoints (initCheckpoint, on the CPU
// backend in the test process) and publishes them into a model registry.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initCompute, silentLogger } from '@cream/compute';
import { initCheckpoint } from '@cream/model';
import { ModelRegistry, type VersionRecord } from '@cream/store';

/** A Llama of 39k parameters: 2 layers, width 32, vocabulary 320, context 128. Loads in milliseconds. */
export const tinyLlamaConfig = {
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  vocab_size: 320,
  hidden_size: 32,
  intermediate_size: 64,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  max_position_embeddings: 128,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
};

/** One version to publish. */
export interface TinyVersion {
  version: string;
  /** Seed of its random weights: other seeds, other weights. */
  seed: number;
  /** Its parent in the registry, if any (published before it). */
  parent?: string | null;
}

/** What was published. */
export interface PublishedVersions {
  /** The registry's record of each version, by name. */
  records: Map<string, VersionRecord>;
  /** Parameters of each model (the same config for all). */
  numParameters: number;
}

/**
 * Writes a random checkpoint per version (config `hfConfig`, tiny Llama by
 * default) and publishes them, in order, into the registry at `registryRoot`.
 */
export async function publishTinyVersions(registryRoot: string, versions: readonly TinyVersion[], hfConfig: Record<string, unknown> = tinyLlamaConfig): Promise<PublishedVersions> {
  await initCompute({ env: { CREAM_BACKEND: 'cpu' }, logger: silentLogger });
  const registry = await ModelRegistry.open(registryRoot);
  const work = mkdtempSync(join(tmpdir(), 'cream-tiny-checkpoints-'));
  const records = new Map<string, VersionRecord>();
  let numParameters = 0;
  try {
    for (const { version, seed, parent } of versions) {
      const made = await initCheckpoint(join(work, version), hfConfig, { seed });
      numParameters = made.numParameters;
      records.set(version, await registry.publish({ version, parent: parent ?? null, recipe: { method: 'init', seed }, fromDirectory: join(work, version) }));
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return { records, numParameters };
}
