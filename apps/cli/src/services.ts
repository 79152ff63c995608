// The services the CLI knows: their package (whose main runs the service),
// default port and gRPC service name. A service whose package is not in the
// workspace yet is listed as unavailable.
import { dirname, join } from 'node:path';

/** One cream service. */
export interface ServiceEntry {
  /** Name on the command line. */
  name: string;
  /** Workspace package whose `src/main.ts` exports `main(argv, env)`. */
  packageName: string;
  /** Default port. */
  defaultPort: number;
  /** Fully qualified gRPC service name (health checks use it). */
  grpcService: string;
  /** One line for help. */
  summary: string;
}

/** Every service, in start order. */
export const services: readonly ServiceEntry[] = [
  { name: 'generator', packageName: '@cream/generator', defaultPort: 50051, grpcService: 'cream.v1.GeneratorService', summary: 'samples responses; hot-swaps model versions' },
  { name: 'judge', packageName: '@cream/judge', defaultPort: 50052, grpcService: 'cream.v1.JudgeService', summary: 'log-prob scoring and rubric judging' },
  {
    name: 'consistency-scorer',
    packageName: '@cream/consistency-scorer',
    defaultPort: 50053,
    grpcService: 'cream.v1.ConsistencyScorerService',
    summary: 'ranking consistency between iterations, weighted preference pairs',
  },
  { name: 'trainer', packageName: '@cream/trainer', defaultPort: 50054, grpcService: 'cream.v1.TrainerService', summary: 'SFT and consistency-regularized DPO jobs' },
  { name: 'coordinator', packageName: '@cream/coordinator', defaultPort: 50055, grpcService: 'cream.v1.CoordinatorService', summary: 'drives CREAM iterations across the services' },
];

/** The path of a service's main module, or undefined when it is not in this installation. */
export function serviceMainPath(entry: ServiceEntry): string | undefined {
  try {
    return join(dirname(require.resolve(`${entry.packageName}/package.json`)), 'src', 'main.ts');
  } catch {
    return undefined;
  }
}

/** Looks a service up by name. */
export function findService(name: string): ServiceEntry | undefined {
  return services.find((s) => s.name === name);
}
