// Adapters from plain async functions to grpc-js handlers. A service writes
// `async (request, ctx) => response` (or writes to a stream); the adapter
// maps thrown errors to status codes in one place (errors.ts), aborts
// `ctx.signal` when the caller cancels or the deadline passes, honours
// back-pressure on streams, and counts calls in flight for graceful drain.
import {
  type Metadata,
  type ServerDuplexStream,
  type ServerReadableStream,
  type ServerUnaryCall,
  type ServerWritableStream,
  type UntypedHandleCall,
  type sendUnaryData,
  type ServiceError as GrpcServiceError,
} from '@grpc/grpc-js';
import { isServerFault, toStatus, type ErrorMapping } from './errors';
import type { Logger } from './logger';

/** What a handler knows about its call. */
export interface CallContext {
  /** The full method path, e.g. /cream.v1.ConsistencyScorerService/Compare. */
  method: string;
  /** The caller's metadata. */
  metadata: Metadata;
  /** Aborted when the caller cancels or its deadline passes: stop the work. */
  signal: AbortSignal;
  /** The caller's deadline, if any. */
  deadline: Date | undefined;
  /** The caller's address. */
  peer: string;
}

/** A streaming handler's context: also a back-pressure aware write. */
export interface StreamContext<Res> extends CallContext {
  /** Sends one message; resolves once the transport can take more. Throws if the call is gone. */
  write(message: Res): Promise<void>;
}

/** Unary: one request, one response. */
export type UnaryHandler<Req, Res> = (request: Req, ctx: CallContext) => Promise<Res> | Res;
/** Server streaming: one request, messages written through ctx.write. */
export type ServerStreamHandler<Req, Res> = (request: Req, ctx: StreamContext<Res>) => Promise<void>;
/** Client streaming: requests as an async iterable, one response. */
export type ClientStreamHandler<Req, Res> = (requests: AsyncIterable<Req>, ctx: CallContext) => Promise<Res>;
/** Bidirectional: requests as an async iterable, messages written through ctx.write. */
export type BidiStreamHandler<Req, Res> = (requests: AsyncIterable<Req>, ctx: StreamContext<Res>) => Promise<void>;

interface MethodShape {
  path: string;
  requestStream: boolean;
  responseStream: boolean;
  requestDeserialize: (buffer: Buffer) => unknown;
  responseSerialize: (value: never) => Buffer;
}
type RequestOf<M> = M extends { requestDeserialize: (buffer: Buffer) => infer R } ? R : never;
type ResponseOf<M> = M extends { responseSerialize: (value: infer R) => Buffer } ? R : never;

/** The handler type a method of a generated service definition needs. */
export type HandlerFor<M> = M extends { requestStream: false; responseStream: false }
  ? UnaryHandler<RequestOf<M>, ResponseOf<M>>
  : M extends { requestStream: false; responseStream: true }
    ? ServerStreamHandler<RequestOf<M>, ResponseOf<M>>
    : M extends { requestStream: true; responseStream: false }
      ? ClientStreamHandler<RequestOf<M>, ResponseOf<M>>
      : BidiStreamHandler<RequestOf<M>, ResponseOf<M>>;

/** Handlers for every method of a generated (ts-proto) service definition. */
export type Handlers<S> = { [K in keyof S]: HandlerFor<S[K]> };

/** Counts calls in flight, for graceful shutdown. */
export class InFlight {
  private count = 0;
  private waiters: Array<() => void> = [];
  /** Calls now running. */
  get size(): number {
    return this.count;
  }
  enter(): void {
    this.count++;
  }
  leave(): void {
    this.count--;
    if (this.count === 0) for (const wake of this.waiters.splice(0)) wake();
  }
  /** Resolves when no call runs. */
  idle(): Promise<void> {
    return this.count === 0 ? Promise.resolve() : new Promise((resolve) => this.waiters.push(resolve));
  }
}

/** What the adapters share. */
export interface AdapterOptions {
  logger: Logger;
  errorMappings: readonly ErrorMapping[];
  inFlight: InFlight;
}

type AnyCall =
  | ServerUnaryCall<unknown, unknown>
  | ServerWritableStream<unknown, unknown>
  | ServerReadableStream<unknown, unknown>
  | ServerDuplexStream<unknown, unknown>;

function contextOf(anyCall: AnyCall, method: string, logger: Logger): { ctx: CallContext; done: () => void } {
  // Every call kind is an EventEmitter with these members; the union's overloads do not unify.
  const call = anyCall as ServerUnaryCall<unknown, unknown>;
  logger.debug('call started', { method, peer: call.getPeer() });
  const controller = new AbortController();
  const deadlineValue = call.getDeadline();
  const deadline = deadlineValue instanceof Date ? deadlineValue : Number.isFinite(deadlineValue) ? new Date(deadlineValue) : undefined;
  let timer: NodeJS.Timeout | undefined;
  if (deadline) {
    const ms = deadline.getTime() - Date.now();
    timer = setTimeout(() => controller.abort(new Error('deadline exceeded')), Math.max(0, ms));
  }
  const onCancel = () => controller.abort(new Error('cancelled by the caller'));
  call.on('cancelled', onCancel);
  return {
    ctx: { method, metadata: call.metadata, signal: controller.signal, deadline, peer: call.getPeer() },
    done: () => {
      if (timer) clearTimeout(timer);
      call.removeListener('cancelled', onCancel);
    },
  };
}

/** The part of a grpc-js writable call that a writer needs. */
interface WritableCall<Res> {
  write(message: Res): boolean;
  once(event: 'drain', listener: () => void): unknown;
  removeListener(event: 'drain', listener: () => void): unknown;
}

function streamWriter<Res>(call: WritableCall<Res>, signal: AbortSignal) {
  return (message: Res): Promise<void> => {
    if (signal.aborted) return Promise.reject(signal.reason ?? new Error('call cancelled'));
    if (call.write(message)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const onDrain = () => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      };
      const onAbort = () => {
        call.removeListener('drain', onDrain);
        reject(signal.reason ?? new Error('call cancelled'));
      };
      call.once('drain', onDrain);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  };
}

function fail(error: unknown, method: string, options: AdapterOptions): Partial<GrpcServiceError> {
  const status = toStatus(error, options.errorMappings);
  const fields = { method, code: status.code, details: status.details };
  if (isServerFault(status.code)) options.logger.error('call failed', { ...fields, error });
  else options.logger.info('call rejected', fields);
  return status;
}

/** Wraps typed handlers into the untyped implementation grpc-js registers. */
export function adaptHandlers(
  definition: Record<string, MethodShape>,
  handlers: Record<string, unknown>,
  options: AdapterOptions,
): Record<string, UntypedHandleCall> {
  const out: Record<string, UntypedHandleCall> = {};
  for (const [name, method] of Object.entries(definition)) {
    const handler = handlers[name];
    if (typeof handler !== 'function') throw new Error(`no handler for ${method.path}`);
    out[name] = adapt(method, handler as (...args: unknown[]) => Promise<unknown>, options);
  }
  return out;
}

function adapt(method: MethodShape, handler: (...args: unknown[]) => Promise<unknown>, options: AdapterOptions): UntypedHandleCall {
  const path = method.path;
  if (!method.requestStream && !method.responseStream) {
    return (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => {
      options.inFlight.enter();
      const { ctx, done } = contextOf(call, path, options.logger);
      Promise.resolve()
        .then(() => handler(call.request, ctx))
        .then(
          (response) => callback(null, response),
          (error) => callback(fail(error, path, options)),
        )
        .finally(() => {
          done();
          options.inFlight.leave();
        });
    };
  }
  if (!method.requestStream && method.responseStream) {
    return (call: ServerWritableStream<unknown, unknown>) => {
      options.inFlight.enter();
      const { ctx, done } = contextOf(call, path, options.logger);
      const streamCtx: StreamContext<unknown> = { ...ctx, write: streamWriter(call, ctx.signal) };
      Promise.resolve()
        .then(() => handler(call.request, streamCtx))
        .then(
          () => call.end(),
          (error) => {
            if (!call.cancelled) call.emit('error', fail(error, path, options));
          },
        )
        .finally(() => {
          done();
          options.inFlight.leave();
        });
    };
  }
  // Client or bidirectional streaming: requests arrive as an async iterable.
  return (call: ServerReadableStream<unknown, unknown> | ServerDuplexStream<unknown, unknown>, callback?: sendUnaryData<unknown>) => {
    options.inFlight.enter();
    const { ctx, done } = contextOf(call, path, options.logger);
    // Not the default async iterator: it destroys the call when the client
    // half-closes, which would drop every response written after that.
    const requests = (call as unknown as { iterator(options: { destroyOnReturn: boolean }): AsyncIterable<unknown> }).iterator({ destroyOnReturn: false });
    const run = method.responseStream
      ? handler(requests, { ...ctx, write: streamWriter(call as ServerDuplexStream<unknown, unknown>, ctx.signal) }).then(() =>
          (call as ServerDuplexStream<unknown, unknown>).end(),
        )
      : handler(requests, ctx).then((response) => callback!(null, response));
    run
      .catch((error) => {
        const status = fail(error, path, options);
        if (method.responseStream) {
          if (!call.cancelled) call.emit('error', status);
        } else callback!(status);
      })
      .finally(() => {
        done();
        options.inFlight.leave();
      });
  };
}
