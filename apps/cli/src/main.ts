// The `cream` command: dispatches to its subcommands. Nothing here loads
// grpc-js before a subcommand needs it (a served service starts telemetry first).

const commands: Record<string, { summary: string; load: () => (argv: readonly string[], env: Record<string, string | undefined>) => Promise<number> }> = {
  serve: {
    summary: 'run one service in the foreground',
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy: keeps grpc-js unloaded until needed
    load: () => (require('./serve') as typeof import('./serve')).serve,
  },
  up: {
    summary: 'start every service on loopback, wait until SERVING, stop all on Ctrl-C',
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy, as above
    load: () => (require('./up') as typeof import('./up')).up,
  },
  trace: {
    summary: 'print span latency per name from a JSONL trace file',
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy, as above
    load: () => (require('./trace') as typeof import('./trace')).trace,
  },
};

/** The top-level help text. */
export function help(): string {
  const width = Math.max(...Object.keys(commands).map((c) => c.length)) + 2;
  return [
    'cream: Consistency Regularized Self-Rewarding language models as gRPC services.',
    '',
    'Usage: cream <command> [options]     (`cream <command> --help` for its options)',
    '',
    'Commands:',
    ...Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}${c.summary}`),
  ].join('\n');
}

/** Runs the CLI; resolves with the exit code. */
export async function main(argv: readonly string[], env: Record<string, string | undefined>): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(help() + '\n');
    return command === undefined ? 2 : 0;
  }
  const entry = commands[command];
  if (!entry) {
    process.stderr.write(`cream: unknown command "${command}"\n\n${help()}\n`);
    return 2;
  }
  try {
    return await entry.load()(rest, env);
  } catch (error) {
    if (error instanceof Error && (error.name === 'ConfigError' || error.name === 'TraceFileError')) {
      process.stderr.write(`cream ${command}: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
}
