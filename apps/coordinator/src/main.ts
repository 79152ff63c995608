// Entry point of the coordinator process (`cream serve coordinator`).
// Telemetry starts before anything loads grpc-js, so the gRPC
// instrumentation can hook it; the service itself is required after.
import { startTelemetry } from '@cream/telemetry';

/** Runs the service until SIGTERM; resolves with the process exit code. */
export async function main(argv: readonly string[], env: Record<string, string | undefined>): Promise<number> {
  const telemetry = startTelemetry({ serviceName: 'cream-coordinator', env });
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded after telemetry on purpose
  const { serve } = require('./serve') as typeof import('./serve');
  return serve(argv, env, telemetry);
}

if (require.main === module) {
  main(process.argv.slice(2), process.env).then(
    (code) => process.exit(code),
    (error) => {
      process.stderr.write(`cream coordinator: ${(error as Error).stack ?? error}\n`);
      process.exit(1);
    },
  );
}
