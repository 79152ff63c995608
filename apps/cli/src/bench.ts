// `cream bench`: the benchmark suite of @cream/bench (the reference shape and
// the base model, the micro shape with --quick, or the checkpoint --model
// names) side by side with the PyTorch baseline of the same model and steps,
// as a table or JSON.
import { join } from 'node:path';
import { DEFAULT_PEAK_GFLOPS, formatReport, METRIC_GROUPS, reportRows, runBench, type MetricGroup } from '@cream/bench';
import { ConfigError, describeConfig, option, readConfig } from '@cream/service-kit';
import { rejectPositionals, wantsHelp } from './model-command';

const usage = `cream bench [--json] [--quick] [--model DIR] [--only ${METRIC_GROUPS.join(',')}] [--repeats N] [--rounds N]`;

const benchOptions = {
  json: option.bool({ flag: 'json', description: 'print the report as JSON (every row, sample and backend) instead of a table', default: false }),
  quick: option.bool({ flag: 'quick', description: 'the micro shape only, 1 warm-up, 2 timed runs: a smoke run of every path in seconds', default: false }),
  model: option.string({
    flag: 'model',
    description: 'a checkpoint directory (config.json and safetensors: cream init-model, pretrain or training output, or a Hugging Face download) to measure instead of the reference shape and the base model; both sides load its weights; with --quick, the micro workload on it',
    default: '',
    defaultHelp: 'the reference shape and the base model',
  }),
  only: option.string({ flag: 'only', description: `comma-separated metric groups (${METRIC_GROUPS.join(', ')})`, default: METRIC_GROUPS.join(',') }),
  repeats: option.int({ flag: 'repeats', description: 'timed runs per metric, after the warm-up', min: 1, max: 1000, default: 0, defaultHelp: '5, 2 with --quick' }),
  warmup: option.int({ flag: 'warmup', description: 'untimed runs first', min: 0, max: 100, default: -1, defaultHelp: '2, 1 with --quick' }),
  rounds: option.int({ flag: 'rounds', description: 'times ours and PyTorch alternate per case, samples pooled (a noisy machine drifts under both)', min: 1, max: 100, default: 1 }),
  python: option.string({ flag: 'python', env: 'CREAM_BENCH_PYTHON', description: 'python of the PyTorch baseline', default: '', defaultHelp: 'python3, else /usr/bin/python3, whichever imports torch' }),
  torchThreads: option.int({ flag: 'torch-threads', description: 'torch threads of the baseline (0: as many as our backend uses)', min: 0, max: 1024, default: 0 }),
  peakGflops: option.number({ flag: 'peak-gflops', description: 'FP32 peak the training step is compared with, GFLOP/s', min: 1, default: DEFAULT_PEAK_GFLOPS }),
  help: option.bool({ flag: 'help', description: 'print this help and exit', default: false }),
};

/** Help for `cream bench`. */
export function benchHelp(): string {
  return [
    `Usage: ${usage}`,
    '',
    'Measures the training step (forward, backward, clipping, AdamW), scoring throughput, greedy',
    'generation throughput at batch 8 and 32 (64-token prompts, 64 new tokens, KV cache), prefill of a',
    '64-token prompt and peak memory, on the reference shape of issue 6 and on the base model (models/m0,',
    'or its shape with random weights when absent), or on the checkpoint --model names (both sides load',
    'its weights; its long sequences are its context, up to 1,024). Each case runs in its own process on the compute',
    'backend cream chooses (CREAM_BACKEND overrides). When python can import torch, the PyTorch',
    'baseline (bench/baseline/llama_bench.py) runs the same model and steps in fp32 with as many threads',
    'and OPENBLAS_CORETYPE unset; ratios > 1 mean ours is better. Figures are medians after warm-up.',
    '',
    'Options:',
    describeConfig(benchOptions),
  ].join('\n');
}

function parseGroups(value: string): MetricGroup[] {
  const groups = value.split(',').map((group) => group.trim()).filter((group) => group !== '');
  const unknown = groups.filter((group) => !(METRIC_GROUPS as readonly string[]).includes(group));
  if (groups.length === 0 || unknown.length > 0) {
    throw new ConfigError(`--only: ${unknown.length > 0 ? `unknown group "${unknown[0]}"` : 'no group given'}; use some of ${METRIC_GROUPS.join(', ')}`, '--only');
  }
  return groups as MetricGroup[];
}

/** Runs `cream bench`; resolves with the exit code. */
export async function bench(argv: readonly string[], env: Record<string, string | undefined>): Promise<number> {
  if (wantsHelp(benchOptions, argv)) {
    process.stdout.write(benchHelp() + '\n');
    return 0;
  }
  const config = readConfig(benchOptions, { argv, env });
  rejectPositionals(config.positionals, usage);
  const report = await runBench({
    workspaceRoot: join(__dirname, '..', '..', '..'),
    quick: config.quick,
    models: config.model === '' ? undefined : [config.model],
    only: parseGroups(config.only),
    repeats: config.repeats === 0 ? undefined : config.repeats,
    warmup: config.warmup === -1 ? undefined : config.warmup,
    rounds: config.rounds,
    python: config.python === '' ? undefined : config.python,
    torchThreads: config.torchThreads === 0 ? undefined : config.torchThreads,
    peakGflops: config.peakGflops,
    env,
    onProgress: (line) => process.stderr.write(`bench: ${line}\n`),
  });
  if (config.json && report.baseline.status === 'skipped') process.stderr.write(`${report.baseline.message}\n`);
  if (config.json) process.stdout.write(JSON.stringify({ ...report, rows: reportRows(report) }, null, 2) + '\n');
  else process.stdout.write(formatReport(report) + '\n');
  return 0;
}
