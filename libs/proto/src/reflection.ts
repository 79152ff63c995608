// gRPC server reflection for the cream.v1 contract, built from the descriptor
// set that codegen writes beside the generated code (with source comments, so
// `grpcurl describe` shows each field's documentation).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Server } from '@grpc/grpc-js';
import { loadFileDescriptorSetFromBuffer } from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';

/** Path of the binary FileDescriptorSet of proto/ (cream.v1 and grpc.health.v1). */
export const descriptorSetPath = join(__dirname, 'gen', 'cream.binpb');

/** Adds the reflection service (v1 and v1alpha) to a server, listing every cream.v1 and health service. */
export function addReflection(server: Server): void {
  const definition = loadFileDescriptorSetFromBuffer(readFileSync(descriptorSetPath), {
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  new ReflectionService(definition).addToServer(server);
}
