// The standard grpc.health.v1 service, backed by a status board the service
// updates: NOT_SERVING until it can do its work (weights loaded), SERVING
// after, NOT_SERVING again while it drains at shutdown. Kubernetes `grpc:`
// probes and grpc_health_probe call Check; Watch streams changes.
import { status as GrpcStatus, type ServerWritableStream, type sendUnaryData, type ServerUnaryCall } from '@grpc/grpc-js';
import { HealthCheckRequest, HealthCheckResponse, type HealthServer, ServingStatus } from '@cream/proto';

/** Serving status of each service name ("" is the whole server). */
export class HealthBoard {
  private readonly statuses = new Map<string, ServingStatus>();
  private readonly watchers = new Map<string, Set<(s: ServingStatus) => void>>();
  private readonly watchCalls = new Set<ServerWritableStream<HealthCheckRequest, HealthCheckResponse>>();

  /** Sets the status of a service (and notifies watchers when it changes). */
  set(service: string, status: ServingStatus): void {
    if (this.statuses.get(service) === status) return;
    this.statuses.set(service, status);
    for (const notify of this.watchers.get(service) ?? []) notify(status);
  }

  /** Sets every known service, and the server as a whole, to one status. */
  setAll(status: ServingStatus): void {
    for (const service of [...this.statuses.keys()]) this.set(service, status);
    this.set('', status);
  }

  /** The status of a service, or undefined when it is unknown. */
  get(service: string): ServingStatus | undefined {
    return this.statuses.get(service);
  }

  /** The grpc.health.v1.Health implementation over this board. */
  implementation(): HealthServer {
    return {
      check: (call: ServerUnaryCall<HealthCheckRequest, HealthCheckResponse>, callback: sendUnaryData<HealthCheckResponse>) => {
        const status = this.statuses.get(call.request.service);
        if (status === undefined) {
          callback({ code: GrpcStatus.NOT_FOUND, details: `unknown service "${call.request.service}"` });
          return;
        }
        callback(null, { status });
      },
      watch: (call: ServerWritableStream<HealthCheckRequest, HealthCheckResponse>) => {
        const service = call.request.service;
        const send = (status: ServingStatus) => call.write({ status });
        send(this.statuses.get(service) ?? ServingStatus.SERVICE_UNKNOWN);
        let set = this.watchers.get(service);
        if (!set) this.watchers.set(service, (set = new Set()));
        set.add(send);
        this.watchCalls.add(call);
        const stop = () => {
          set!.delete(send);
          this.watchCalls.delete(call);
        };
        call.on('cancelled', stop);
        call.on('close', stop);
        call.on('error', stop);
      },
    };
  }

  /** Ends every Watch stream (at shutdown, so draining does not wait on them). */
  endWatches(): void {
    for (const call of this.watchCalls) call.end();
    this.watchCalls.clear();
  }
}
