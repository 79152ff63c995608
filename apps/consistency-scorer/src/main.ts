// Entry point of the consistency scorer process (`cream serve consistency-scorer`).
// Telemetry starts before anything loads grpc-js, so the gRPC
// instrumentation can hook it; everything else is required after.
import { startTelemetry } from '@cream/telemetry';

/** Runs the service until SIGTERM; resolves with the process exit code. */
export async function main(argv: readonly string[], env: Record<string, string | undefined>): Promise<number> {
  const telemetry = startTelemetry({ serviceName: 'cream-consistency-scorer', env });
  /* eslint-disable @typescript-eslint/no-require-imports -- loaded after telemetry on purpose */
  const { runService } = require('@cream/service-kit') as typeof import('@cream/service-kit');
  const { consistencyScorer } = require('./serve') as typeof import('./serve');
  /* eslint-enable @typescript-eslint/no-require-imports */
  const running = await runService(consistencyScorer, argv, env, { onStopped: () => telemetry.shutdown() });
  if ('exitCode' in running) {
    await telemetry.shutdown();
    return running.exitCode;
  }
  await running.stopped;
  return 0;
}

if (require.main === module) {
  main(process.argv.slice(2), process.env).then(
    (code) => process.exit(code),
    (error) => {
      process.stderr.write(`cream consistency-scorer: ${(error as Error).stack ?? error}\n`);
      process.exit(1);
    },
  );
}
