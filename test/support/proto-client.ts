// gRPC clients built from the .proto files alone, with @grpc/proto-loader:
// what a user's own tool has, independent of cream's generated TypeScript.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { workspaceRoot } from './processes';

const loaderOptions: protoLoader.Options = { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true };

/** Loads proto files (relative to an include root) into a grpc-js package object. */
export function loadProto(files: string[], includeDirs: string[]): grpc.GrpcObject {
  return grpc.loadPackageDefinition(protoLoader.loadSync(files, { ...loaderOptions, includeDirs }));
}

/** The cream.v1 and grpc.health.v1 packages from proto/ (every file of proto/cream/v1). */
export function creamProto(): grpc.GrpcObject {
  const root = join(workspaceRoot, 'proto');
  const cream = readdirSync(join(root, 'cream', 'v1'))
    .filter((file) => file.endsWith('.proto'))
    .sort()
    .map((file) => `cream/v1/${file}`);
  return loadProto([...cream, 'grpc/health/v1/health.proto'], [root]);
}

/** The standard reflection v1 package (its .proto ships inside @grpc/reflection). */
export function reflectionProto(): grpc.GrpcObject {
  const dir = join(require.resolve('@grpc/reflection/package.json'), '..', 'build', 'proto');
  return loadProto(['grpc/reflection/v1/reflection.proto'], [dir]);
}

/** Looks up a service constructor by its dotted name. */
export function serviceClient(pkg: grpc.GrpcObject, dotted: string): grpc.ServiceClientConstructor {
  let node: unknown = pkg;
  for (const part of dotted.split('.')) node = (node as Record<string, unknown>)[part];
  return node as grpc.ServiceClientConstructor;
}

/** Calls a unary method and resolves with the response or rejects with the ServiceError. */
export function unary<T>(client: grpc.Client, method: string, request: unknown, deadlineMs = 30_000): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    (client as unknown as Record<string, (...args: unknown[]) => void>)[method](
      request,
      new grpc.Metadata(),
      { deadline: Date.now() + deadlineMs },
      (error: grpc.ServiceError | null, response: T) => (error ? reject(error) : resolve(response)),
    );
  });
}
