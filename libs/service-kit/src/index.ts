// Public surface of @cream/service-kit: what every cream service main uses.

/** A gRPC server with health, reflection, limits and graceful shutdown. */
export { GrpcService, defaultLimits, type GrpcServiceOptions, type ServerLimits } from './server';
/** The life of a service process: options, listen, SERVING, SIGTERM. */
export { runService, serveUntilStopped, commonOptions, type ServiceProgram, type RunningService, type ServiceTelemetry } from './run';
/** Typed handler signatures and call context. */
export type {
  CallContext,
  StreamContext,
  UnaryHandler,
  ServerStreamHandler,
  ClientStreamHandler,
  BidiStreamHandler,
  Handlers,
} from './handlers';
/** The hot-swappable model slot: background load, atomic switch, leases for calls in flight. */
export { ModelSlot, type SlotModel, type Lease, type SlotState } from './model-slot';
/** Several resident versions under a memory budget, least recently used evicted (the judge). */
export { ModelCache, type SizedModel, type ResidentModel } from './model-cache';
/** The grpc.health.v1 status board. */
export { HealthBoard } from './health';
/** Typed errors and the one mapping from errors to gRPC status codes. */
export {
  ServiceError,
  InvalidArgumentError,
  NotFoundError,
  FailedPreconditionError,
  ResourceExhaustedError,
  UnavailableError,
  ConfigError,
  mapErrorClass,
  toStatus,
  type ErrorMapping,
} from './errors';
/** Configuration from flags and environment, validated at start. */
export { readConfig, describeConfig, option, type OptionSpec, type ConfigSpec, type ConfigValues } from './config';
/** Structured JSON-lines logging. */
export { createLogger, parseLogLevel, type Logger, type LogLevel, type LogFields } from './logger';
/** gRPC status codes, re-exported so services need not import grpc-js for them. */
export { status as GrpcStatus } from '@grpc/grpc-js';
