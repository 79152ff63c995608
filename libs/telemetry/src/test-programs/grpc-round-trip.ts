// Child program for the propagation test: starts telemetry writing to the
// trace file given as argument, only then requires grpc-js, serves a generic
// unary Echo method on 127.0.0.1:0, calls it once from a client inside
// withSpan('client-root'), shuts everything down and prints what it saw as one
// JSON line. The test reads the trace file to check the spans. With
// `grpc-first` it requires grpc-js before startTelemetry, the mistake the
// handle warns about.
// Usage: grpc-round-trip.ts <traceFile> [grpc-first]
import { currentTraceId, startTelemetry, withSpan } from '../index';
import { bytesUnaryMethod } from './bytes-method';

async function main(): Promise<void> {
  const [traceFile, order] = process.argv.slice(2);
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- the wrong order, on request
  if (order === 'grpc-first') require('@grpc/grpc-js');
  const grpcLoadedBeforeStart = Object.keys(require.cache).some((file) => file.includes('@grpc/grpc-js'));
  const logged: string[] = [];
  const logger = { warn: (message: string) => logged.push(`warn ${message}`), error: (message: string) => logged.push(`error ${message}`) };
  const telemetry = startTelemetry({ serviceName: 'round-trip', env: {}, traceFile, logger });
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- after startTelemetry on purpose: this is what is tested
  const grpc = require('@grpc/grpc-js') as typeof import('@grpc/grpc-js');

  const echoService = { Echo: bytesUnaryMethod('/cream.test.Echo/Echo') };

  const server = new grpc.Server();
  // The handler answers with the traceparent header it received (what crossed
  // the wire) and the trace id it runs under (the server's active context).
  server.addService(echoService, {
    Echo: (call: import('@grpc/grpc-js').ServerUnaryCall<Buffer, Buffer>, callback: import('@grpc/grpc-js').sendUnaryData<Buffer>) => {
      const seen = { request: call.request.toString(), traceparent: call.metadata.get('traceparent')[0] ?? null, serverTraceId: currentTraceId() ?? null };
      callback(null, Buffer.from(JSON.stringify(seen)));
    },
  });
  const port = await new Promise<number>((done, fail) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? fail(error) : done(bound))),
  );

  const EchoClient = grpc.makeGenericClientConstructor(echoService, 'Echo');
  const client = new EchoClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as import('@grpc/grpc-js').Client & {
    Echo(request: Buffer, callback: (error: import('@grpc/grpc-js').ServiceError | null, reply?: Buffer) => void): void;
  };
  const { rootTraceId, reply } = await withSpan('client-root', { 'test.case': 'propagation' }, async () => {
    const reply = await new Promise<unknown>((done, fail) =>
      client.Echo(Buffer.from('hello'), (error, value) => (error ? fail(error) : done(JSON.parse(value?.toString() ?? 'null')))),
    );
    return { rootTraceId: currentTraceId(), reply };
  });

  client.close();
  await new Promise<void>((done) => server.tryShutdown(() => done()));
  await telemetry.shutdown();
  process.stdout.write(JSON.stringify({ grpcLoadedBeforeStart, warnings: telemetry.warnings, logged, rootTraceId, reply }) + '\n');
}

main().catch((error: unknown) => {
  process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
  process.exitCode = 1;
});
