// Child program for the exporter tests: starts telemetry from its environment
// like a service would (CREAM_TRACE_FILE or OTEL_EXPORTER_OTLP_ENDPOINT,
// OTEL_SERVICE_NAME), then ends `count` spans named "written-span" that each carry `padBytes` of
// padding, and shuts down. With a barrier directory it first waits until
// `writers` programs are ready, so several of them write at the same time.
// Usage: write-spans.ts <count> <padBytes> [<barrierDir> <writers>]
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startTelemetry, withSpan } from '../index';

async function waitForWriters(barrierDir: string, writers: number): Promise<void> {
  writeFileSync(join(barrierDir, `ready-${process.pid}`), '');
  const deadline = Date.now() + 60_000;
  while (readdirSync(barrierDir).filter((name) => name.startsWith('ready-')).length < writers) {
    if (Date.now() > deadline) throw new Error(`only some of ${writers} writers became ready in ${barrierDir}`);
    await new Promise((wake) => setTimeout(wake, 5));
  }
}

async function main(): Promise<void> {
  const [countText, padText, barrierDir, writersText] = process.argv.slice(2);
  const count = Number(countText);
  const padding = 'x'.repeat(Number(padText));
  const telemetry = startTelemetry({ serviceName: 'write-spans', env: process.env });
  if (barrierDir !== undefined && existsSync(barrierDir)) await waitForWriters(barrierDir, Number(writersText));
  for (let index = 0; index < count; index += 1) {
    withSpan('written-span', { index, padding }, () => undefined);
  }
  await telemetry.shutdown();
  process.stdout.write(JSON.stringify({ exporterKind: telemetry.exporterKind, traceFile: telemetry.traceFile ?? null }) + '\n');
}

main().catch((error: unknown) => {
  process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
  process.exitCode = 1;
});
