// The consistency scorer's program: registers Compare and maps the method
// library's validation errors to INVALID_ARGUMENT. It holds no model, so it
// is SERVING as soon as it listens.
import { InvalidScoresError } from '@cream/cream';
import { ConsistencyScorerServiceService } from '@cream/proto';
import { GrpcStatus, mapErrorClass, type ServiceProgram, serveUntilStopped, type ServiceTelemetry } from '@cream/service-kit';
import { compare } from './compare';

/** Default port of the consistency scorer. */
export const defaultPort = 50053;

/** The service program runService runs. */
export const consistencyScorer: ServiceProgram<Record<string, never>> = {
  name: 'consistency-scorer',
  summary:
    'Compares the current and previous models\' reward rankings of each prompt\'s responses (Kendall, Spearman or top-order), ' +
    'returns per-prompt consistency, the rate C (avg or dyn) and the weighted preference pairs. Holds no model.',
  defaultPort,
  options: {},
  setup(server) {
    server.mapErrors(mapErrorClass(InvalidScoresError, GrpcStatus.INVALID_ARGUMENT));
    server.add('cream.v1.ConsistencyScorerService', ConsistencyScorerServiceService, {
      compare: (request) => compare(request),
    });
  },
};

/** Runs the consistency scorer until SIGTERM, then flushes telemetry; resolves with the exit code. */
export async function serve(
  argv: readonly string[],
  env: Record<string, string | undefined>,
  telemetry: ServiceTelemetry,
): Promise<number> {
  return serveUntilStopped(consistencyScorer, argv, env, telemetry);
}
