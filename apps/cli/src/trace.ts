// `cream trace`: the latency table of a JSONL trace file (the local default
// exporter's output): per span name and kind, count, total, mean, p50, p95, max.
import { describeConfig, option, readConfig } from '@cream/service-kit';
import { defaultTraceFile, formatLatencyTable, summarizeSpans } from '@cream/telemetry';

const traceOptions = {
  file: option.string({ flag: 'file', env: 'CREAM_TRACE_FILE', description: 'JSONL trace file (default: <CREAM_HOME or ./.cream>/traces/spans.jsonl)', default: '' }),
  traceId: option.string({ flag: 'trace-id', description: 'only spans of this trace', default: '' }),
  service: option.string({ flag: 'service', description: 'only spans of this service (e.g. cream-consistency-scorer)', default: '' }),
  help: option.bool({ flag: 'help', description: 'print this help and exit', default: false }),
};

/** Runs `cream trace`; resolves with the exit code. */
export async function trace(argv: readonly string[], env: Record<string, string | undefined>): Promise<number> {
  const config = readConfig(traceOptions, { argv, env });
  if (config.help) {
    process.stdout.write(`Usage: cream trace [options]\n\nPrints span latency per name from a JSONL trace file.\n\nOptions:\n${describeConfig(traceOptions)}\n`);
    return 0;
  }
  const file = config.file || defaultTraceFile(env);
  const rows = summarizeSpans(file, { traceId: config.traceId || undefined, service: config.service || undefined });
  process.stdout.write(`${file}\n${formatLatencyTable(rows)}\n`);
  return 0;
}
