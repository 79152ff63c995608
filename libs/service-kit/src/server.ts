// A cream gRPC server: grpc-js with the standard health service, reflection,
// message size limits, typed handlers, and a graceful shutdown that stops
// accepting calls, lets calls in flight finish up to a deadline, then exits.
import { Server, ServerCredentials, type ServiceDefinition } from '@grpc/grpc-js';
import { addReflection, HealthService, ServingStatus } from '@cream/proto';
import type { ErrorMapping } from './errors';
import { HealthBoard } from './health';
import { adaptHandlers, InFlight, type Handlers } from './handlers';
import type { Logger } from './logger';

/** Limits a server enforces on every call. */
export interface ServerLimits {
  /** Largest request message, bytes (grpc-js answers RESOURCE_EXHAUSTED above it). */
  maxReceiveBytes: number;
  /** Largest response message, bytes. */
  maxSendBytes: number;
  /** Concurrent calls per connection. */
  maxConcurrentStreams: number;
}

/** Defaults: 64 MiB messages (a CompareRequest of 100k prompts x 5 scores is ~5 MiB), 256 streams. */
export const defaultLimits: ServerLimits = {
  maxReceiveBytes: 64 * 1024 * 1024,
  maxSendBytes: 64 * 1024 * 1024,
  maxConcurrentStreams: 256,
};

/** How to build a server. */
export interface GrpcServiceOptions {
  /** Service name for logs, e.g. "consistency-scorer". */
  name: string;
  /** Logger (calls are logged through it). */
  logger: Logger;
  /** Library errors and the status each becomes. */
  errorMappings?: readonly ErrorMapping[];
  /** Limits; defaults above. */
  limits?: Partial<ServerLimits>;
  /** Register grpc reflection (on by default). */
  reflection?: boolean;
}

/** A running or startable gRPC server. */
export class GrpcService {
  /** grpc.health.v1 status board: set SERVING once the service can work. */
  readonly health = new HealthBoard();
  /** Calls now running. */
  readonly inFlight = new InFlight();
  private readonly server: Server;
  private readonly serviceNames: string[] = [];
  private shuttingDown: Promise<void> | undefined;
  private boundAddress = '';
  private readonly errorMappings: ErrorMapping[];

  constructor(private readonly options: GrpcServiceOptions) {
    this.errorMappings = [...(options.errorMappings ?? [])];
    const limits = { ...defaultLimits, ...options.limits };
    this.server = new Server({
      'grpc.max_receive_message_length': limits.maxReceiveBytes,
      'grpc.max_send_message_length': limits.maxSendBytes,
      'grpc.max_concurrent_streams': limits.maxConcurrentStreams,
    });
    this.server.addService(HealthService, this.health.implementation());
    if (options.reflection !== false) addReflection(this.server);
    // Not serving until the service says so (e.g. after its weights load).
    this.health.set('', ServingStatus.NOT_SERVING);
  }

  /**
   * Registers a generated service definition with typed handlers. `fullName` is
   * the proto name (e.g. "cream.v1.ConsistencyScorerService"), the key health uses.
   */
  add<S extends ServiceDefinition>(fullName: string, definition: S, handlers: Handlers<S>): void {
    const implementation = adaptHandlers(
      definition as unknown as Parameters<typeof adaptHandlers>[0],
      handlers as Record<string, unknown>,
      { logger: this.options.logger, errorMappings: this.errorMappings, inFlight: this.inFlight },
    );
    this.server.addService(definition, implementation);
    this.serviceNames.push(fullName);
    this.health.set(fullName, ServingStatus.NOT_SERVING);
  }

  /** Adds mappings from library error classes to status codes (before or after add). */
  mapErrors(...mappings: ErrorMapping[]): void {
    this.errorMappings.push(...mappings);
  }

  /** Marks every registered service (and the server) SERVING or NOT_SERVING. */
  setServing(serving: boolean): void {
    const status = serving ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;
    for (const name of this.serviceNames) this.health.set(name, status);
    this.health.set('', status);
  }

  /** Binds and starts; resolves with the address actually bound ("host:port"). */
  async listen(host: string, port: number): Promise<string> {
    const boundPort = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync(`${host.includes(':') ? `[${host}]` : host}:${port}`, ServerCredentials.createInsecure(), (error, p) =>
        error ? reject(error) : resolve(p),
      ),
    );
    this.boundAddress = `${host}:${boundPort}`;
    this.options.logger.info('listening', { service: this.options.name, address: this.boundAddress, services: this.serviceNames });
    return this.boundAddress;
  }

  /** The bound address, after listen. */
  get address(): string {
    return this.boundAddress;
  }

  /**
   * Graceful shutdown: NOT_SERVING, stop accepting calls, wait for calls in
   * flight up to `graceMs`, then cancel what is left. Idempotent.
   */
  shutdown(graceMs: number): Promise<void> {
    if (this.shuttingDown) return this.shuttingDown;
    const logger = this.options.logger;
    this.shuttingDown = new Promise<void>((resolve) => {
      this.setServing(false);
      this.health.endWatches();
      logger.info('shutting down', { inFlight: this.inFlight.size, graceMs });
      const timer = setTimeout(() => {
        logger.warn('grace period over; cancelling calls in flight', { inFlight: this.inFlight.size });
        this.server.forceShutdown();
        resolve();
      }, graceMs);
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        logger.info('stopped', { service: this.options.name });
        resolve();
      });
    });
    return this.shuttingDown;
  }

  /**
   * On SIGTERM or SIGINT: shut down gracefully, then call `onStopped` (a main
   * sets the exit code there). A second signal forces an immediate stop.
   */
  stopOnSignals(graceMs: number, onStopped: () => void): void {
    let signalled = false;
    const handler = (signal: NodeJS.Signals) => {
      if (signalled) {
        this.options.logger.warn('second signal; forcing stop', { signal });
        this.server.forceShutdown();
        onStopped();
        return;
      }
      signalled = true;
      this.options.logger.info('signal received', { signal });
      void this.shutdown(graceMs).then(onStopped);
    };
    process.on('SIGTERM', handler);
    process.on('SIGINT', handler);
  }
}
