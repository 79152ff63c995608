// Public surface of @cream/proto: the generated cream.v1 contract and the
// standard health and reflection wiring. The only library that imports gen/.

/** Shared messages: prompts, sampling, model versions, compute info, the method's enums. */
export * from './gen/cream/v1/common.pb';
/** ConsistencyScorerService: per-prompt consistency, rate and pairs. */
export * from './gen/cream/v1/consistency.pb';
/** GeneratorService: sampling and hot swap. */
export * from './gen/cream/v1/generator.pb';
/** JudgeService: log-prob scoring and rubric judging. */
export * from './gen/cream/v1/judge.pb';
/** TrainerService: SFT and consistency-regularized DPO jobs. */
export * from './gen/cream/v1/trainer.pb';
/** CoordinatorService: runs, stages, results. */
export * from './gen/cream/v1/coordinator.pb';
/** The standard grpc.health.v1 protocol. */
export {
  HealthCheckRequest,
  HealthCheckResponse,
  HealthCheckResponse_ServingStatus as ServingStatus,
  HealthService,
  HealthClient,
  type HealthServer,
} from './gen/grpc/health/v1/health.pb';
/** Reflection over every service in proto/. */
export { addReflection, descriptorSetPath } from './reflection';
