// A unary gRPC method that carries raw bytes, so test servers and clients need
// no generated code (this library may not import @cream/proto). Type-only use
// of grpc-js: importing this module does not load it.
import type { MethodDefinition } from '@grpc/grpc-js';

const bytes = (value: Buffer) => value;

/** A unary method at `path` ("/package.Service/Method") whose messages are the bytes themselves. */
export function bytesUnaryMethod(path: string): MethodDefinition<Buffer, Buffer> {
  return {
    path,
    requestStream: false,
    responseStream: false,
    requestSerialize: bytes,
    requestDeserialize: bytes,
    responseSerialize: bytes,
    responseDeserialize: bytes,
  };
}
