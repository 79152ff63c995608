// `cream serve <service>`: runs one service in this process until SIGTERM.
// The service's main is loaded by package name at run time (apps never
// import each other's code statically), after nothing has loaded grpc-js,
// so the service's telemetry starts first.
import { findService, serviceMainPath, services } from './services';

/** Help for `cream serve`. */
export function serveHelp(): string {
  const rows = services.map((s) => `  ${s.name.padEnd(20)}${s.summary} (port ${s.defaultPort})${serviceMainPath(s) ? '' : ' [not in this build yet]'}`);
  return [
    'Usage: cream serve <service> [--port N] [--host ADDR] [options]',
    '',
    'Runs one service in the foreground until SIGTERM or Ctrl-C (then drains calls in flight).',
    '`cream serve <service> --help` lists that service\'s options.',
    '',
    'Services:',
    ...rows,
  ].join('\n');
}

/** Runs the named service; resolves with the exit code. */
export async function serve(argv: readonly string[], env: Record<string, string | undefined>): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h') {
    process.stdout.write(serveHelp() + '\n');
    return name === undefined ? 2 : 0;
  }
  const entry = findService(name);
  if (!entry) {
    process.stderr.write(`cream serve: unknown service "${name}"; one of: ${services.map((s) => s.name).join(', ')}\n`);
    return 2;
  }
  const mainPath = serviceMainPath(entry);
  if (!mainPath) {
    process.stderr.write(`cream serve: the ${name} service is not part of this build yet (package ${entry.packageName} not found)\n`);
    return 2;
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded by path at run time on purpose
  const service = require(mainPath) as { main(argv: readonly string[], env: Record<string, string | undefined>): Promise<number> };
  return service.main(rest, env);
}
