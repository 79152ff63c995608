// The name rules: every bad version name, run id, stage name and file path is
// refused with an InvalidInputError naming the field and the limit, before
// anything touches the filesystem.
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InvalidInputError, ModelRegistry, NAME_CHARACTERS, RunStore } from './index';
import { checkFilePath, checkName, generateName, stageDirectoryName, stageNameOf } from './names';

describe('version names and run ids', () => {
  it.each([
    ['', 1],
    ['a'.repeat(129), 128],
    ['m 1', NAME_CHARACTERS],
    ['run/42', NAME_CHARACTERS],
    ['é', NAME_CHARACTERS],
    ['.', 'not starting with "."'],
    ['..', 'not starting with "."'],
    ['.hidden', 'not starting with "."'],
    ['latest', 'not "latest"'],
    ['LATEST', 'not "latest"'],
  ])('refuses %j with the limit %j', (name, limit) => {
    const error = (() => {
      try {
        checkName(name, 'version', 'version');
      } catch (caught) {
        return caught;
      }
    })();
    expect(error).toBeInstanceOf(InvalidInputError);
    expect(error).toMatchObject({ field: 'version', limit });
  });

  it('accepts 1 to 128 bytes of [A-Za-z0-9._-]', () => {
    for (const name of ['m', 'M2', 'run-42.m2_final', 'a'.repeat(128), 'latest-ish']) expect(checkName(name, 'version', 'version')).toBe(name);
    expect(checkName('latest', 'runId', 'run')).toBe('latest');
  });

  it('refuses a bad name at the public API with nothing written', async () => {
    const root = await mkdtemp(join(tmpdir(), 'cream-names-'));
    try {
      const registry = await ModelRegistry.open(root);
      await expect(registry.publish({ version: 'a b', recipe: { method: 'sft' }, write: () => undefined })).rejects.toMatchObject({
        name: 'InvalidInputError',
        field: 'version',
        limit: NAME_CHARACTERS,
      });
      await expect(registry.get('x'.repeat(200))).rejects.toMatchObject({ field: 'version', limit: 128 });
      await expect(registry.publish({ version: 'ok', parent: '../up', recipe: { method: 'sft' }, write: () => undefined })).rejects.toMatchObject({ field: 'parent' });
      const store = await RunStore.open(root);
      await expect(store.createRun({}, { runId: '../escape' })).rejects.toMatchObject({ field: 'runId', limit: NAME_CHARACTERS });
      await expect(store.openRun('')).rejects.toMatchObject({ field: 'runId', limit: 1 });
      const run = await store.createRun({});
      await expect(run.writeStage('iter-1//sample', {})).rejects.toMatchObject({ field: 'stage', limit: 1 });
      await expect(run.writeStage('iter-1/../x', {})).rejects.toMatchObject({ field: 'stage' });
      await expect(run.writeStage('s', {}, { files: { '../x': 'y' } })).rejects.toMatchObject({ field: 'path' });
      await expect(run.writeStage('s', {}, { files: { 'data.json': 'y' } })).rejects.toMatchObject({ field: 'path' });
      expect(await readdir(join(root, 'versions'))).toEqual([]);
      expect(await run.listStages()).toEqual([]);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});

describe('stage names', () => {
  it('maps "/" segments to one flat directory name and back', () => {
    expect(stageDirectoryName('iter-2/score-current')).toBe('iter-2+score-current');
    expect(stageNameOf('iter-2+score-current')).toBe('iter-2/score-current');
    expect(stageDirectoryName('sft')).toBe('sft');
  });

  it('refuses empty segments, dot segments, other characters and names over 200 bytes', () => {
    for (const [stage, limit] of [
      ['', 1],
      ['a/', 1],
      ['/a', 1],
      ['a/./b', 'not starting with "."'],
      ['a+b', NAME_CHARACTERS],
      ['x'.repeat(201), 200],
    ] as const) {
      expect(() => stageDirectoryName(stage)).toThrow(expect.objectContaining({ field: 'stage', limit }));
    }
  });
});

describe('file paths inside a version or stage', () => {
  it('accepts relative "/" paths and refuses anything that could escape or mean two things', () => {
    expect(checkFilePath('onnx/model.onnx', 'path')).toBe('onnx/model.onnx');
    for (const path of ['', '/abs', 'a/../b', './a', 'a\\b', 'a\0b', 'a//b', `${'x'.repeat(256)}`, 'y/'.repeat(600)]) {
      expect(() => checkFilePath(path, 'files[0]')).toThrow(expect.objectContaining({ name: 'InvalidInputError', field: 'files[0]' }));
    }
  });
});

describe('generated names', () => {
  it('are valid, sortable by time and distinct', () => {
    const name = generateName('v', new Date('2025-03-04T05:06:07Z'));
    expect(name).toMatch(/^v-20250304-050607-[0-9a-f]{6}$/);
    expect(checkName(name, 'version', 'version')).toBe(name);
    expect(generateName('v')).not.toBe(generateName('v'));
  });
});
