// runService over real loopback gRPC when a service's `ready` fails: a bad
// configuration value a library read at start (an error naming the variable
// and the value) stops the service with exit status 2 and one line on stderr;
// any other failure leaves it listening, NOT_SERVING.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { credentials } from '@grpc/grpc-js';
import { HealthClient, ServingStatus } from '@cream/proto';
import { runService, type RunningService, type ServiceProgram } from './run';

class LibraryConfigError extends Error {
  constructor(
    message: string,
    readonly variable: string,
    readonly value: string,
  ) {
    super(message);
  }
}

function program(ready: () => Promise<void>): ServiceProgram<Record<string, never>> {
  return { name: 'probe', summary: 'a probe', defaultPort: 0, options: {}, setup: () => ({ ready: ready() }) };
}

function check(address: string): Promise<ServingStatus> {
  const health = new HealthClient(address, credentials.createInsecure());
  return new Promise((resolve, reject) =>
    health.check({ service: '' }, (error, response) => {
      health.close();
      if (error) reject(error);
      else resolve(response.status);
    }),
  );
}

const running: RunningService[] = [];
afterEach(async () => {
  vi.restoreAllMocks();
  await Promise.all(running.splice(0).map((r) => r.server.shutdown(100)));
});

async function start(ready: () => Promise<void>): Promise<RunningService> {
  const result = await runService(program(ready), ['--port', '0', '--log-level', 'error'], {});
  if ('exitCode' in result) throw new Error(`exited with ${result.exitCode}`);
  running.push(result);
  return result;
}

describe('runService when ready fails', () => {
  it('stops with exit status 2 and names the variable when a configuration value is bad, even one rejected before listening', async () => {
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    // Rejected at once: before the server listens.
    const service = await start(() => Promise.reject(new LibraryConfigError("CREAM_WIDGET='x' must be a number", 'CREAM_WIDGET', 'x')));
    await service.stopped;
    expect(service.exitStatus()).toBe(2);
    expect(stderr).toHaveBeenCalledWith("cream probe: CREAM_WIDGET='x' must be a number\n");
  });

  it('stays listening, NOT_SERVING, with exit status 0 for any other failure', async () => {
    const service = await start(() => Promise.reject(new Error('the registry is empty')));
    expect(await check(service.address)).toBe(ServingStatus.NOT_SERVING);
    expect(service.exitStatus()).toBe(0);
    let stopped = false;
    void service.stopped.then(() => (stopped = true));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(stopped).toBe(false);
  });

  it('serves once ready resolves', async () => {
    const service = await start(() => new Promise((resolve) => setTimeout(resolve, 10)));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await check(service.address)).toBe(ServingStatus.SERVING);
    expect(service.exitStatus()).toBe(0);
  });
});
