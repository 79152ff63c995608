// The model registry on real files in a temp folder: publish and read back,
// `latest`, tamper detection (a flipped byte, an extra file, a missing file),
// import, remove, and publishes racing inside one process.
import { chmod, cp, mkdir, mkdtemp, readFile, readdir, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManifestMismatchError, MANIFEST_FILE, ModelRegistry, VersionExistsError, VersionNotFoundError, InvalidInputError } from './index';
import { sha256Hex } from './files';

let root: string;
let registry: ModelRegistry;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'cream-registry-'));
  registry = await ModelRegistry.open(root);
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

/** A small Hugging Face directory whose weights depend on `tag`. */
async function huggingFaceDirectory(tag: string): Promise<string> {
  const directory = await mkdtemp(join(root, 'source-'));
  await writeFile(join(directory, 'config.json'), JSON.stringify({ architectures: ['LlamaForCausalLM'], tag }));
  await writeFile(join(directory, 'model.safetensors'), Buffer.alloc(4096, tag));
  await writeFile(join(directory, 'tokenizer.json'), JSON.stringify({ model: { type: 'BPE' } }));
  return directory;
}

const recipe = { method: 'sft', dataSha256: sha256Hex('data'), hyperparameters: { learningRate: 1e-6 }, metrics: { loss: 0.5 } };

async function flipByte(path: string, at: number): Promise<void> {
  await chmod(path, 0o644);
  const bytes = await readFile(path);
  bytes[at] ^= 0x01;
  await writeFile(path, bytes);
}

describe('publish and read back', () => {
  it('stores the files with a manifest of their checksums, parent and recipe', async () => {
    const base = await registry.publish({ version: 'm0', recipe: { method: 'pretrain' }, fromDirectory: await huggingFaceDirectory('a') });
    const record = await registry.publish({ version: 'm1', parent: 'm0', recipe, fromDirectory: await huggingFaceDirectory('b') });

    expect(record.path).toBe(join(root, 'versions', 'm1'));
    expect((await readdir(record.path)).sort()).toEqual(['config.json', MANIFEST_FILE, 'model.safetensors', 'tokenizer.json']);
    const manifest = await registry.get('m1');
    expect(manifest).toEqual(record.manifest);
    expect(manifest).toMatchObject({ version: 'm1', parent: 'm0', recipe });
    expect(manifest.files.map((file) => file.path)).toEqual(['config.json', 'model.safetensors', 'tokenizer.json']);
    const weights = manifest.files.find((file) => file.path === 'model.safetensors')!;
    expect(weights).toEqual({ path: 'model.safetensors', bytes: 4096, sha256: sha256Hex(Buffer.alloc(4096, 'b')) });
    expect(base.manifest).toMatchObject({ parent: null, recipe: { method: 'pretrain', dataSha256: null, hyperparameters: {}, metrics: {} } });

    expect(await registry.manifestSha256('m1')).toBe(sha256Hex(await readFile(join(record.path, MANIFEST_FILE))));
    expect(record.manifestSha256).toBe(await registry.manifestSha256('m1'));
    expect((await registry.verify('m1')).version).toBe('m1');
    expect((await registry.open('m1')).path).toBe(record.path);
    expect((await registry.list()).map((entry) => entry.version)).toEqual(['m0', 'm1']);
  });

  it('writes through a callback into the registry, with subdirectories, and generates a name when none is given', async () => {
    const record = await registry.publish({
      recipe,
      write: async (directory) => {
        await writeFile(join(directory, 'config.json'), '{}');
        await mkdir(join(directory, 'onnx'));
        await writeFile(join(directory, 'onnx', 'model.onnx'), 'weights');
        expect(directory.startsWith(join(root, '.tmp'))).toBe(true);
      },
    });
    expect(record.version).toMatch(/^v-\d{8}-\d{6}-[0-9a-f]{6}$/);
    expect(record.manifest.files.map((file) => file.path)).toEqual(['config.json', 'onnx/model.onnx']);
    await registry.verify(record.version);
  });

  it('resolves latest to the most recent publish, by sequence, whatever the names and mtimes', async () => {
    await expect(registry.resolve('latest')).rejects.toBeInstanceOf(VersionNotFoundError);
    for (const version of ['zeta', 'alpha', 'mid']) await registry.publish({ version, recipe, fromDirectory: await huggingFaceDirectory(version) });
    expect(await registry.resolve('latest')).toBe('mid');
    expect((await registry.get('latest')).version).toBe('mid');
    expect((await registry.list()).map((entry) => [entry.version, entry.manifest.sequence])).toEqual([
      ['zeta', 1],
      ['alpha', 2],
      ['mid', 3],
    ]);
    await registry.remove('mid');
    expect(await registry.resolve('latest')).toBe('alpha');
    await registry.publish({ version: 'next', recipe, fromDirectory: await huggingFaceDirectory('n') });
    expect((await registry.get('latest')).sequence).toBe(4);
  });

  it('imports a user Hugging Face directory, following links to files as a model cache has them', async () => {
    const source = await huggingFaceDirectory('user');
    await mkdir(join(root, 'blobs'));
    await writeFile(join(root, 'blobs', 'abc'), 'generation config');
    await symlink(join(root, 'blobs', 'abc'), join(source, 'generation_config.json'));
    const record = await registry.importDirectory(source, { version: 'user-model' });
    expect(record.manifest.recipe).toEqual({ method: 'import', source, dataSha256: null, hyperparameters: {}, metrics: {} });
    expect(await readFile(join(record.path, 'generation_config.json'), 'utf8')).toBe('generation config');
    await registry.verify('user-model');

    const notAModel = await mkdtemp(join(root, 'plain-'));
    await expect(registry.importDirectory(notAModel)).rejects.toMatchObject({ name: 'InvalidInputError', field: 'sourceDirectory' });
  });

  it('refuses a taken name without touching the stored version', async () => {
    const first = await registry.publish({ version: 'm1', recipe, fromDirectory: await huggingFaceDirectory('first') });
    await expect(registry.publish({ version: 'm1', recipe, fromDirectory: await huggingFaceDirectory('second') })).rejects.toBeInstanceOf(VersionExistsError);
    expect(await registry.manifestSha256('m1')).toBe(first.manifestSha256);
    await registry.verify('m1');
    expect(await readdir(join(root, '.tmp'))).toEqual([]);
  });

  it('lets exactly one of several concurrent publishes of one name win', async () => {
    const sources = await Promise.all(['a', 'b', 'c', 'd'].map(huggingFaceDirectory));
    const outcomes = await Promise.allSettled(sources.map((fromDirectory) => registry.publish({ version: 'race', recipe, fromDirectory })));
    const winners = outcomes.filter((outcome) => outcome.status === 'fulfilled');
    expect(winners).toHaveLength(1);
    for (const outcome of outcomes) if (outcome.status === 'rejected') expect(outcome.reason).toBeInstanceOf(VersionExistsError);
    const stored = await registry.verify('race');
    expect(stored.manifestSha256).toBe((winners[0] as PromiseFulfilledResult<{ manifestSha256: string }>).value.manifestSha256);
  });

  it('refuses an unknown parent, a manifest among the files, an empty version and a bad recipe', async () => {
    const source = await huggingFaceDirectory('x');
    await expect(registry.publish({ version: 'm2', parent: 'nope', recipe, fromDirectory: source })).rejects.toMatchObject({
      name: 'VersionNotFoundError',
      version: 'nope',
      field: 'parent',
    });
    await writeFile(join(source, MANIFEST_FILE), '{}');
    await expect(registry.publish({ version: 'm2', recipe, fromDirectory: source })).rejects.toMatchObject({ name: 'InvalidInputError', field: 'files' });
    await expect(registry.publish({ version: 'm2', recipe, write: () => undefined })).rejects.toMatchObject({ field: 'files', limit: 1 });
    await expect(registry.publish({ version: 'm2', recipe: { ...recipe, dataSha256: 'abc' }, fromDirectory: source })).rejects.toMatchObject({
      field: 'recipe.dataSha256',
    });
    await expect(registry.publish({ version: 'm2', recipe: { ...recipe, metrics: { loss: Number.NaN } }, fromDirectory: source })).rejects.toMatchObject({
      field: 'recipe.metrics.loss',
      limit: 'finite number',
    });
    await expect(registry.publish({ version: 'm2', recipe, fromDirectory: source, write: () => undefined })).rejects.toBeInstanceOf(InvalidInputError);
    expect(await registry.list()).toEqual([]);
    expect(await readdir(join(root, '.tmp'))).toEqual([]);
  });
});

describe('tampering', () => {
  beforeEach(async () => {
    await registry.publish({ version: 'm1', recipe, fromDirectory: await huggingFaceDirectory('w') });
  });

  it('catches a flipped byte in a weight file, naming the file and both checksums', async () => {
    const weights = join(root, 'versions', 'm1', 'model.safetensors');
    const expected = (await registry.get('m1')).files.find((file) => file.path === 'model.safetensors')!.sha256;
    await flipByte(weights, 1234);
    const error = await registry.verify('m1').catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ManifestMismatchError);
    expect(error).toMatchObject({ version: 'm1', file: 'model.safetensors', problem: 'modified', expected, actual: sha256Hex(await readFile(weights)) });
    expect((error as Error).message).toContain('model.safetensors');
    await expect(registry.open('m1')).rejects.toMatchObject({ file: 'model.safetensors' });
    await expect(registry.open('latest', { verify: true })).rejects.toBeInstanceOf(ManifestMismatchError);
    expect((await registry.open('m1', { verify: false })).version).toBe('m1');
  });

  it('catches an extra file, a missing file, a truncated file and a link', async () => {
    const directory = join(root, 'versions', 'm1');
    await writeFile(join(directory, 'extra.bin'), 'x');
    await expect(registry.verify('m1')).rejects.toMatchObject({ file: 'extra.bin', problem: 'extra', expected: 'absent' });
    await unlink(join(directory, 'extra.bin'));

    await rm(join(directory, 'tokenizer.json'));
    await expect(registry.verify('m1')).rejects.toMatchObject({ file: 'tokenizer.json', problem: 'missing', actual: 'absent' });
    await writeFile(join(directory, 'tokenizer.json'), JSON.stringify({ model: { type: 'BPE' } }));
    await registry.verify('m1');

    await chmod(join(directory, 'config.json'), 0o644);
    await writeFile(join(directory, 'config.json'), '{}');
    await expect(registry.verify('m1')).rejects.toMatchObject({ file: 'config.json', problem: 'size' });
    await rm(join(directory, 'config.json'));
    await symlink(join(root, 'elsewhere'), join(directory, 'config.json'));
    await expect(registry.verify('m1')).rejects.toMatchObject({ file: 'config.json', problem: 'not-a-file' });
  });

  it('refuses a version whose manifest differs from a pinned sha256, or names another version', async () => {
    const pinned = await registry.manifestSha256('m1');
    expect((await registry.open('m1', { manifestSha256: pinned })).manifestSha256).toBe(pinned);
    await expect(registry.open('m1', { manifestSha256: '0'.repeat(64) })).rejects.toMatchObject({ file: MANIFEST_FILE, problem: 'manifest-sha256' });

    await cp(join(root, 'versions', 'm1'), join(root, 'versions', 'm1-copy'), { recursive: true });
    await expect(registry.verify('m1-copy')).rejects.toMatchObject({ problem: 'wrong-version', expected: 'm1-copy', actual: 'm1' });
    await chmod(join(root, 'versions', 'm1-copy', MANIFEST_FILE), 0o644);
    await writeFile(join(root, 'versions', 'm1-copy', MANIFEST_FILE), 'not json');
    await expect(registry.get('m1-copy')).rejects.toMatchObject({ problem: 'unreadable' });
    expect((await registry.list()).map((entry) => entry.version)).toEqual(['m1']);
  });
});

describe('remove', () => {
  it('removes only a version named explicitly', async () => {
    await registry.publish({ version: 'm1', recipe, fromDirectory: await huggingFaceDirectory('r') });
    await expect(registry.remove('latest')).rejects.toMatchObject({ field: 'version' });
    await expect(registry.remove('m9')).rejects.toBeInstanceOf(VersionNotFoundError);
    await registry.remove('m1');
    expect(await registry.has('m1')).toBe(false);
    await expect(registry.get('m1')).rejects.toBeInstanceOf(VersionNotFoundError);
    expect(await readdir(join(root, '.tmp'))).toEqual([]);
  });
});
