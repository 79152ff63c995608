// Each dev pod's container, run here as the kubelet would run it in the CPU image: the image's
// ENTRYPOINT plus the Deployment's args, in the image's WORKDIR layout (the repository root), with
// the environment the pod gets (cream-config, the env list, downward-API fields), /data and /tmp
// mapped to temporary directories. Every service's configuration must parse; a service in this
// build must then come up, answer the kubelet's grpc.health.v1 probe SERVING, write its per-pod
// trace file, and drain and exit on SIGTERM within the pod's termination grace.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials, Metadata } from '@grpc/grpc-js';
import { HealthClient, ServingStatus } from '@cream/proto';
import { afterAll, describe, expect, it } from 'vitest';
import { containerEnvironment } from './container-environment';
import { envPairs, execForm, instructionsOf, readDockerfile } from './dockerfile';
import { creamServices, deployRoot, render, serviceDeployments, workspaceRoot } from './manifests';

const objects = render('overlays/dev');
const services = creamServices();
const runtime = readDockerfile(join(deployRoot, 'docker', 'Dockerfile')).stages.at(-1)!;
const entrypoint = execForm(instructionsOf(runtime, 'ENTRYPOINT')[0].args)!;
const imageEnv = Object.assign({}, ...instructionsOf(runtime, 'ENV').map((i) => envPairs(i.args))) as Record<string, string>;
const scratch = mkdtempSync(join(tmpdir(), 'cream-deploy-pods-'));

afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** The pod's command and environment, with its mounts (/data, /tmp) moved under a scratch directory. */
function podProcess(name: string) {
  const { deployment, container } = serviceDeployments(objects, services).find((c) => c.service.name === name)!;
  const root = join(scratch, name);
  const mounts = Object.fromEntries((container.volumeMounts ?? []).map((m) => [m.mountPath, join(root, m.name)]));
  for (const dir of Object.values(mounts)) mkdirSync(dir, { recursive: true });
  const remap = (value: string) => {
    for (const [mountPath, local] of Object.entries(mounts)) if (value === mountPath || value.startsWith(`${mountPath}/`)) return local + value.slice(mountPath.length);
    return value;
  };
  const podEnv = { ...imageEnv, ...containerEnvironment(container, objects, { name: `${name}-7d4b9c-x2x9z`, namespace: 'cream-dev', nodeName: 'node-0' }) };
  const env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/bin:/bin', TMPDIR: mounts['/tmp'] };
  for (const [key, value] of Object.entries(podEnv)) env[key] = remap(value);
  if (entrypoint[0] !== 'node') throw new Error(`the ENTRYPOINT starts ${entrypoint[0]}, not node`);
  return { deployment, container, env, argv: [...entrypoint.slice(1), ...(container.args ?? [])], podEnv, remap };
}

function healthCheck(address: string): Promise<ServingStatus> {
  const client = new HealthClient(address, credentials.createInsecure());
  return new Promise<ServingStatus>((resolve, reject) =>
    client.check({ service: '' }, new Metadata(), { deadline: Date.now() + 2000 }, (error, response) => {
      client.close();
      if (error) reject(error);
      else resolve(response.status);
    }),
  );
}

describe.each(services)('the $name pod', (service) => {
  it(service.inBuild ? 'parses its configuration (flags and environment)' : 'reports that its service is not in this build yet', () => {
    const pod = podProcess(service.name);
    const result = spawnSync(process.execPath, [...pod.argv, '--help'], { cwd: workspaceRoot, env: pod.env, encoding: 'utf8', timeout: 60_000 });
    if (service.inBuild) {
      expect(result.status, result.stderr).toBe(0);
      expect(result.stdout).toContain(`Usage: cream serve ${service.name}`);
    } else {
      expect(result.status).toBe(2);
      expect(result.stderr).toContain(`the ${service.name} service is not part of this build yet`);
    }
  });
});

describe('the consistency-scorer pod, started', () => {
  it('listens, answers the kubelet’s grpc.health.v1 probe SERVING, traces to its own file, and drains on SIGTERM in time', async () => {
    const pod = podProcess('consistency-scorer');
    // The pod's own args, then loopback and a free port: this machine is shared.
    const child = spawn(process.execPath, [...pod.argv, '--host', '127.0.0.1', '--port', '0'], { cwd: workspaceRoot, env: pod.env, stdio: ['ignore', 'ignore', 'pipe'] });
    const exited = new Promise<{ code: number | null; at: number }>((resolve) => child.on('exit', (code) => resolve({ code, at: Date.now() })));
    let log = '';
    child.stderr!.on('data', (chunk: Buffer) => (log += chunk.toString('utf8')));
    try {
      const startup = pod.container.startupProbe!;
      const budgetMs = startup.periodSeconds! * startup.failureThreshold! * 1000;
      const started = Date.now();
      let address: string | undefined;
      while (!address) {
        if (Date.now() - started > budgetMs) throw new Error(`not listening within the startupProbe budget; log:\n${log}`);
        if (child.exitCode !== null) throw new Error(`exited ${child.exitCode}; log:\n${log}`);
        const listening = log
          .split('\n')
          .filter(Boolean)
          .map((line) => JSON.parse(line) as { msg?: string; address?: string })
          .find((line) => line.msg === 'listening');
        address = listening?.address;
        if (!address) await new Promise((r) => setTimeout(r, 100));
      }
      let status: ServingStatus | undefined;
      while (status !== ServingStatus.SERVING && Date.now() - started < budgetMs) {
        status = await healthCheck(address).catch(() => undefined);
        if (status !== ServingStatus.SERVING) await new Promise((r) => setTimeout(r, 200));
      }
      expect(status).toBe(ServingStatus.SERVING);
      // CREAM_TRACE_FILE=/data/traces/$(POD_NAME).jsonl, expanded and on the shared volume.
      expect(pod.podEnv.CREAM_TRACE_FILE).toBe('/data/traces/consistency-scorer-7d4b9c-x2x9z.jsonl');
      expect(existsSync(pod.remap(pod.podEnv.CREAM_TRACE_FILE))).toBe(true);

      const preStop = Number(pod.container.lifecycle!.preStop!.exec!.command![1]);
      const graceMs = (pod.deployment.spec!.template.spec!.terminationGracePeriodSeconds! - preStop) * 1000;
      const signalled = Date.now();
      child.kill('SIGTERM');
      const { code, at } = await exited;
      expect(code, log).toBe(0);
      expect(at - signalled).toBeLessThan(graceMs);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});
