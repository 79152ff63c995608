// Errors of the ReplicaSet (replicas.ts), and the one rule that decides
// whether a failed call is the replica's transport (retried on another
// replica) or the service's answer (fails the stage). Each error names the
// service, the shard and the replica addresses, so a stage's error in the run
// store says where to look.
import { status, type ServiceError } from '@grpc/grpc-js';

/** Base of every error the ReplicaSet throws on purpose. */
export class ReplicaSetError extends Error {
  override name = 'ReplicaSetError';
}

/** A target is neither "host:port" nor "dns:///name:port"; `target` is the string given. */
export class ReplicaTargetError extends ReplicaSetError {
  override name = 'ReplicaTargetError';
  constructor(
    readonly target: string,
    problem: string,
  ) {
    super(`replica target "${target}" ${problem}; expected "host:port", "[ipv6]:port" or "dns:///name:port"`);
  }
}

/** No replica to run on: every target failed to resolve (or resolved to nothing) for long enough. */
export class NoReplicaError extends ReplicaSetError {
  override name = 'NoReplicaError';
  constructor(
    readonly service: string,
    readonly targets: readonly string[],
    /** Why each target gave no address, e.g. `dns:///generator:50051: getaddrinfo ENOTFOUND generator`. */
    readonly reasons: readonly string[],
  ) {
    super(`no ${service} replica available from ${targets.join(', ')}${reasons.length > 0 ? `: ${reasons.join('; ')}` : ''}`);
  }
}

/** Which part of a shard attempt failed: the per-replica preparation, or the shard's work. */
export type ShardPhase = 'prepare' | 'work';

/**
 * A map() failed because of one shard: the service answered with an error
 * (`transport` false; not retried), or every attempt failed on transport
 * (`transport` true; attempts exhausted). `cause` is the last error.
 */
export class ShardError extends ReplicaSetError {
  override name = 'ShardError';
  /** The gRPC status code of the cause, when it is a gRPC error. */
  readonly code: status | undefined;
  constructor(
    readonly service: string,
    readonly shardIndex: number,
    /** The replica of the last attempt. */
    readonly address: string,
    readonly attempt: number,
    readonly maxAttempts: number,
    readonly phase: ShardPhase,
    readonly transport: boolean,
    options: { cause: unknown; stage?: string },
  ) {
    const where = `${service} shard ${shardIndex}${options.stage ? ` of stage ${options.stage}` : ''}`;
    const what = phase === 'prepare' ? `preparing replica ${address} failed` : `failed on ${address}`;
    const why = transport ? `, and every attempt failed on transport (attempt ${attempt} of ${maxAttempts})` : ` (attempt ${attempt} of ${maxAttempts}; not retried: the service's own error)`;
    super(`${where}: ${what}${why}: ${describeError(options.cause)}`, { cause: options.cause });
    this.code = grpcCode(options.cause);
  }
}

/** A broadcast() that some replicas did not confirm; `failures` maps each such address to its error. */
export class BroadcastError extends ReplicaSetError {
  override name = 'BroadcastError';
  constructor(
    readonly service: string,
    readonly failures: ReadonlyMap<string, unknown>,
    /** How many replicas the action ran on. */
    readonly numReplicas: number,
  ) {
    const listed = [...failures].map(([address, error]) => `${address} (${describeError(error)})`);
    super(`${failures.size} of ${numReplicas} ${service} replicas did not confirm: ${listed.join('; ')}`);
  }
}

/** The ReplicaSet was closed; nothing more runs on it. */
export class ReplicaSetClosedError extends ReplicaSetError {
  override name = 'ReplicaSetClosedError';
  constructor(readonly service: string) {
    super(`the ${service} replica set is closed`);
  }
}

/** True for any error the ReplicaSet throws on purpose. */
export function isReplicaSetError(error: unknown): error is ReplicaSetError {
  return error instanceof ReplicaSetError;
}

/** True for a shard that failed the map (service error or attempts exhausted). */
export function isShardError(error: unknown): error is ShardError {
  return error instanceof ShardError;
}

/** True for a broadcast some replicas did not confirm. */
export function isBroadcastError(error: unknown): error is BroadcastError {
  return error instanceof BroadcastError;
}

/** True when no replica could be found to run on. */
export function isNoReplicaError(error: unknown): error is NoReplicaError {
  return error instanceof NoReplicaError;
}

/** The numeric gRPC status of a grpc-js ServiceError, or undefined for any other value. */
function grpcCode(error: unknown): status | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const code = (error as Partial<ServiceError>).code;
  return typeof code === 'number' && status[code] !== undefined ? code : undefined;
}

/** "CODE_NAME: details" for a gRPC error, the message for another error. */
export function describeError(error: unknown): string {
  const code = grpcCode(error);
  if (code !== undefined) return `${status[code]}: ${(error as ServiceError).details ?? (error as Error).message}`;
  return error instanceof Error ? error.message : String(error);
}

/**
 * True when a call failed because of the replica or the connection to it,
 * not because the service refused the request: the same request may succeed
 * on another replica (or on this one once it is back).
 * - UNAVAILABLE (refused connection, dropped connection, a replica that is not
 *   serving yet) and DEADLINE_EXCEEDED;
 * - CANCELLED that this process did not ask for: grpc-js reports "Cancelled on
 *   client" for a local cancel (e.g. the run was cancelled), and "Call
 *   cancelled" for the RST_STREAM a dying server sends;
 * - INTERNAL that grpc-js synthesizes from a reset stream ("Received
 *   RST_STREAM ...") or a dropped connection;
 * - UNKNOWN without a status from the server ("No status information
 *   received", or an HTTP status from a proxy in between). A handler that
 *   throws is UNKNOWN with its own message, and is the service's error.
 */
export function isTransportFailure(error: unknown): boolean {
  const code = grpcCode(error);
  if (code === undefined) return false;
  const details = String((error as ServiceError).details ?? '');
  switch (code) {
    case status.UNAVAILABLE:
    case status.DEADLINE_EXCEEDED:
      return true;
    case status.CANCELLED:
      return details !== 'Cancelled on client';
    case status.INTERNAL:
      return details.startsWith('Received RST_STREAM') || details.includes('Connection dropped');
    case status.UNKNOWN:
      return details === 'No status information received' || details.startsWith('Received HTTP status code');
    default:
      return false;
  }
}
