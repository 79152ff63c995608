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
  run: {
    summary: 'run a CREAM experiment (default preset, or flags / --spec) on every service started on loopback; --resume RUN_ID',
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy, as above
    load: () => (require('./run') as typeof import('./run')).run,
  },
  compare: {
    summary: 'run CREAM and its baselines over seeds on the same data and budget; the comparison table and report',
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy, as above
    load: () => (require('./compare') as typeof import('./compare')).compare,
  },
  trace: {
    summary: 'print span latency per name from a JSONL trace file',
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy, as above
    load: () => (require('./trace') as typeof import('./trace')).trace,
  },
  'init-model': {
    summary: 'write a random Hugging Face checkpoint of a config.json\'s architecture, with a tokenizer',
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy, as above
    load: () => (require('./init-model') as typeof import('./init-model')).initModel,
  },
  generate: {
    summary: 'continue a prompt with a checkpoint and print the text',
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy, as above
    load: () => (require('./generate') as typeof import('./generate')).generate,
  },
  models: {
    summary: 'import a Hugging Face directory into the model registry, list and verify versions',
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy, as above
    load: () => (require('./models') as typeof import('./models')).models,
  },
  score: {
    summary: 'log-probabilities of responses given prompts, JSONL in, JSONL out',
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy, as above
    load: () => (require('./score') as typeof import('./score')).score,
  },
  bench: {
    summary: 'training, scoring, generation and prefill speed of the reference shape and the base model, beside PyTorch',
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy, as above
    load: () => (require('./bench') as typeof import('./bench')).bench,
  },
  pretrain: {
    summary: 'train a small Llama model and its BPE tokenizer from scratch on the built-in suite (how models/m0 was made)',
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy, as above
    load: () => (require('./pretrain') as typeof import('./pretrain')).pretrain,
  },
};

// Expected failures print one line, never a stack: a usage error (a flag, an
// option out of range) exits 2; a bad input file, checkpoint or prompt exits 1.
// Matched by name, so this file loads no library.
const usageErrors = new Set(['ConfigError', 'TraceFileError', 'InvalidOptionError', 'ComputeConfigError']);
const inputErrors = new Set([
  'InputFileError',
  'ModelConfigError',
  'ModelWeightsError',
  'CheckpointError',
  'SafetensorsError',
  'UnsupportedDtypeError',
  'TokenizerError',
  'ContextLengthError',
  'TokenIdError',
  'BackendUnavailableError',
  'InvalidInputError',
  'VersionExistsError',
  'VersionNotFoundError',
  'ManifestMismatchError',
  'BenchCaseError',
  'WasmMemoryError',
]);

/** The exit code of an expected failure, or undefined for a bug (which prints its stack). */
function expectedExitCode(error: unknown): number | undefined {
  if (!(error instanceof Error)) return undefined;
  if (usageErrors.has(error.name)) return 2;
  if (inputErrors.has(error.name)) return 1;
  // A file system failure (EACCES, ENOSPC, ENOTDIR...) says what and where in its message.
  const code = (error as NodeJS.ErrnoException).code;
  if (typeof code === 'string' && (error as NodeJS.ErrnoException).syscall !== undefined) return 1;
  return undefined;
}

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
    const code = expectedExitCode(error);
    if (code === undefined) throw error;
    process.stderr.write(`cream ${command}: ${(error as Error).message}\n`);
    return code;
  }
}
