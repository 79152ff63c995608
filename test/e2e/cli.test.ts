// The `cream` command as a user runs it: help on every command, clear errors
// for unknown commands and services, and `cream up` bringing the available
// services up on loopback, SERVING, then stopping them all on Ctrl-C.
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { describe, expect, it, onTestFinished } from 'vitest';
import { creamBin, workspaceRoot } from '../support/processes';
import { creamProto, serviceClient, unary } from '../support/proto-client';
import { publishTinyVersions } from '../support/tiny-models';

function cream(args: string[]) {
  return spawnSync(process.execPath, [creamBin, ...args], { encoding: 'utf8', timeout: 60_000 });
}

describe('cream', () => {
  it('prints help for itself and each command', () => {
    const top = cream(['--help']);
    expect(top.status).toBe(0);
    expect(top.stdout).toContain('serve');
    expect(top.stdout).toContain('up');
    const serve = cream(['serve', '--help']);
    expect(serve.status).toBe(0);
    expect(serve.stdout).toContain('consistency-scorer');
    const service = cream(['serve', 'consistency-scorer', '--help']);
    expect(service.status).toBe(0);
    expect(service.stdout).toContain('--port <int 0..65535>');
    expect(service.stdout).toContain('CREAM_SHUTDOWN_GRACE_SECONDS');
    const up = cream(['up', '--help']);
    expect(up.status).toBe(0);
    expect(up.stdout).toContain('--port-offset');
  });

  it('fails clearly on an unknown command, service or flag, and on a bad variable', () => {
    const command = cream(['frobnicate']);
    expect(command.status).toBe(2);
    expect(command.stderr).toContain('unknown command "frobnicate"');
    const service = cream(['serve', 'nope']);
    expect(service.status).toBe(2);
    expect(service.stderr).toContain('unknown service "nope"');
    const flag = cream(['serve', 'consistency-scorer', '--prot', '1']);
    expect(flag.status).toBe(2);
    expect(flag.stderr).toContain('unknown flag --prot');
    const variable = spawnSync(process.execPath, [creamBin, 'serve', 'consistency-scorer'], {
      encoding: 'utf8',
      env: { ...process.env, CREAM_PORT: 'eighty' },
      timeout: 60_000,
    });
    expect(variable.status).toBe(2);
    expect(variable.stderr).toContain('CREAM_PORT');
  });

  it('trace: prints the latency table of a trace file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cream-trace-'));
    const file = join(dir, 'spans.jsonl');
    const span = (spanId: string, ms: number) =>
      JSON.stringify({
        traceId: 't1', spanId, parentSpanId: null, name: 'grpc.cream.v1.ConsistencyScorerService/Compare', kind: 'SERVER',
        service: 'cream-consistency-scorer', startTimeUnixNano: '0', endTimeUnixNano: String(ms * 1e6), durationMs: ms,
        status: { code: 'UNSET' }, attributes: {}, events: [],
      });
    writeFileSync(file, [span('a', 10), span('b', 30)].join('\n') + '\n');
    const result = cream(['trace', '--file', file]);
    expect(result.status).toBe(0);
    expect(result.stdout).toContain('grpc.cream.v1.ConsistencyScorerService/Compare');
    expect(result.stdout).toMatch(/\b2\b/);
    const missing = cream(['trace', '--file', join(dir, 'nope.jsonl')]);
    expect(missing.status).toBe(2);
  });

  it('models: imports an init-model checkpoint into the registry, lists and verifies it', () => {
    const root = mkdtempSync(join(tmpdir(), 'cream-models-'));
    const model = join(root, 'm0');
    const registry = join(root, 'registry');
    const init = cream(['init-model', '--config', join(workspaceRoot, 'apps', 'cli', 'configs', 'tiny-llama.json'), '--out', model, '--seed', '1']);
    expect(init.status, init.stderr).toBe(0);
    const imported = cream(['models', 'import', model, '--version', 'm0', '--registry', registry]);
    expect(imported.status, imported.stderr).toBe(0);
    expect(imported.stdout).toContain('imported');
    expect(imported.stdout).toContain('as m0');
    const again = cream(['models', 'import', model, '--version', 'm0', '--registry', registry]);
    expect(again.status).toBe(1);
    expect(again.stderr).toMatch(/m0/);
    const list = cream(['models', 'list', '--registry', registry]);
    expect(list.stdout).toMatch(/^m0\t/m);
    expect(cream(['models', 'verify', 'm0', '--registry', registry]).stdout).toContain('every file matches its manifest');
    // A flipped byte is caught.
    const weights = join(registry, 'versions', 'm0', 'model.safetensors');
    chmodSync(weights, 0o644);
    const bytes = readFileSync(weights);
    bytes[bytes.length - 1] ^= 0xff;
    writeFileSync(weights, bytes);
    const verify = cream(['models', 'verify', 'm0', '--registry', registry]);
    expect(verify.status).toBe(1);
    expect(verify.stderr).toContain('model.safetensors');
    const missing = cream(['models', 'import', join(root, 'nope'), '--registry', registry]);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toContain('config.json');
  });

  it('up: with an empty registry, the model services come up NOT_SERVING and are reported, not fatal', async () => {
    const logDir = mkdtempSync(join(tmpdir(), 'cream-up-empty-'));
    const home = mkdtempSync(join(tmpdir(), 'cream-up-empty-home-'));
    const child = spawn(process.execPath, [creamBin, 'up', '--port-offset', '12411', '--log-dir', logDir, '--serving-timeout-seconds', '2'], {
      env: { ...process.env, CREAM_HOME: home },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    // However the test ends, cream up (and through it every service) stops.
    onTestFinished(() => {
      if (child.exitCode === null) child.kill('SIGINT');
    });
    const deadline = Date.now() + 90_000;
    while (!stdout.includes('Ctrl-C stops them all')) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`cream up did not come up:\n${stdout}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(stdout).toContain('every service is up');
    expect(stdout).toMatch(/generator\s+127\.0\.0\.1:62462\s+NOT_SERVING/);
    expect(stdout).toMatch(/consistency-scorer\s+127\.0\.0\.1:62464\s+SERVING/);
    expect(stdout).toContain('cream models import');
    child.kill('SIGINT');
    expect(await exited, `${stdout}\nlogs in ${logDir}`).toBe(0);
  });

  it('up: starts the services, waits for SERVING, prints endpoints, stops all on SIGINT', async () => {
    const logDir = mkdtempSync(join(tmpdir(), 'cream-up-'));
    // The generator is NOT_SERVING until it holds a model: give the services a home whose registry has one.
    const home = mkdtempSync(join(tmpdir(), 'cream-up-home-'));
    await publishTinyVersions(join(home, 'registry'), [{ version: 'base', seed: 1 }]);
    // A port offset keeps clear of anything on the default ports, and above the
    // kernel's ephemeral ports (32768-60999 here), which outgoing connections take.
    const child = spawn(process.execPath, [creamBin, 'up', '--port-offset', '12311', '--log-dir', logDir], {
      env: { ...process.env, CREAM_HOME: home },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const deadline = Date.now() + 90_000;
    while (!stdout.includes('Ctrl-C stops them all')) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`cream up did not come up:\n${stdout}\n${stderr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(stdout).toContain('every service is SERVING');
    const address = `127.0.0.1:${50053 + 12311}`;
    expect(stdout).toContain(`consistency-scorer`);
    expect(stdout).toContain(address);
    const Health = serviceClient(creamProto(), 'grpc.health.v1.Health');
    const health = new Health(address, grpc.credentials.createInsecure());
    expect(await unary(health, 'Check', { service: 'cream.v1.ConsistencyScorerService' })).toEqual({ status: 'SERVING' });
    health.close();
    // The generator serves the registry's latest version.
    expect(stdout).toContain(`127.0.0.1:${50051 + 12311}`);
    const generatorHealth = new Health(`127.0.0.1:${50051 + 12311}`, grpc.credentials.createInsecure());
    expect(await unary(generatorHealth, 'Check', { service: 'cream.v1.GeneratorService' })).toEqual({ status: 'SERVING' });
    generatorHealth.close();
    child.kill('SIGINT');
    expect(await exited).toBe(0);
    expect(stdout).toContain('cream up: stopped');
  });
});
