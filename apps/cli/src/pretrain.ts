// `cream pretrain`: trains a small Llama-architecture model from scratch, with
// its byte-level BPE tokenizer, on the built-in suite's `pretrain` split (the
// corpus drawn from BUILTIN_SUITE_SEED, with its wrong and badly formatted
// answers), in chat form rendered by the model's own chat template, so that
// chat-template generation is what the model has learned. The loss counts the
// assistant tokens only, as SFT does. Writes a Hugging Face directory plus
// pretrain.json (how it was made, and the greedy accuracy on the suite's test
// sets); this is how the shipped base model models/m0 was made.
import { mkdtempSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  CheckpointError,
  initCheckpoint,
  LanguageModel,
  ModelConfigError,
  modelConfigFromHf,
  saveCheckpoint,
  shuffledOrder,
  toHostTensors,
  TokenizerError,
  trainSft,
  TrainingCancelledError,
  type SftExample,
  type TrainProgress,
} from '@cream/model';
import { describeConfig, option, readConfig, type OptionSpec } from '@cream/service-kit';
import { buildSuite, BUILTIN_SUITE_SEED, DEFAULT_SUITE_SIZES, evaluate, summarizeSuite, type EvaluationReport, type TaskItem } from '@cream/tasks';
import { describeBackend, InputFileError, nonEmptyDirectory, readHfConfig, rejectPositionals, startCompute, wantsHelp } from './model-command';

/** The shape M0 ships with. */
export const DEFAULT_PRETRAIN_CONFIG = join(__dirname, '..', 'configs', 'm0-llama.json');

/** File pretrain writes beside the checkpoint, recording how it was made. */
export const PRETRAIN_RECORD_FILE = 'pretrain.json';

const usage = 'cream pretrain --out DIR [--config CONFIG.json] [--vocab-size V] [--epochs E] [--batch-size B] [--lr LR] [--seed S] [--max-seconds T] [--force]';

const vocabOption = option.int({ flag: 'vocab-size', description: '', min: 259, max: 1_000_000 });
const vocabSizeOption: OptionSpec<number | 'config'> = {
  flag: 'vocab-size',
  description: "tokenizer and embedding size (256 bytes + learned merges + 3 special tokens); config: the config's vocab_size",
  kind: `${vocabOption.kind} | config`,
  default: 'config',
  parse: (raw) => (raw.trim() === 'config' ? 'config' : vocabOption.parse(raw)),
};

const pretrainOptions = {
  out: option.string({ flag: 'out', description: 'directory to write the Hugging Face checkpoint to (must be empty unless --force)', nonEmpty: true }),
  config: option.string({ flag: 'config', description: 'model shape: a Hugging Face config.json (default apps/cli/configs/m0-llama.json)', default: DEFAULT_PRETRAIN_CONFIG, nonEmpty: true }),
  vocabSize: vocabSizeOption,
  epochs: option.int({ flag: 'epochs', description: 'passes over the corpus', default: 4, min: 1, max: 1000 }),
  batchSize: option.int({ flag: 'batch-size', description: 'examples per optimizer step', default: 32, min: 1, max: 4096 }),
  lr: option.number({ flag: 'lr', description: 'peak learning rate (AdamW, linear warmup over 5% of the steps, cosine decay)', default: 2e-3, min: 1e-7, max: 1 }),
  seed: option.int({ flag: 'seed', description: 'seed of the initial weights and of the data order', default: 0, min: 0, max: Number.MAX_SAFE_INTEGER }),
  maxSeconds: option.number({ flag: 'max-seconds', description: 'stop training cleanly after the step that crosses this many seconds and save; 0: no limit', default: 0, min: 0, max: 1e7 }),
  pretrainPerTask: option.int({ flag: 'pretrain-per-task', description: 'corpus examples per task drawn from the built-in suite', default: DEFAULT_SUITE_SIZES.pretrainPerTask, min: 1, max: 100_000 }),
  evalPerTask: option.int({ flag: 'eval-per-task', description: 'test items per task evaluated greedily after training (0 skips)', default: DEFAULT_SUITE_SIZES.testPerTask, min: 0, max: DEFAULT_SUITE_SIZES.testPerTask }),
  maxNewTokens: option.int({ flag: 'max-new-tokens', description: 'most tokens of an evaluation answer', default: 128, min: 1, max: 100_000 }),
  force: option.bool({ flag: 'force', description: 'replace a non-empty --out directory', default: false }),
  help: option.bool({ flag: 'help', description: 'print this help and exit', default: false }),
};

/** Help for `cream pretrain`. */
export function pretrainHelp(): string {
  return [
    `Usage: ${usage}`,
    '',
    "Trains a Llama-architecture model from scratch on the built-in suite's pretraining corpus (drawn",
    `from seed ${BUILTIN_SUITE_SEED}; it holds wrong and badly formatted answers on purpose). A byte-level`,
    'BPE tokenizer of exactly --vocab-size ids is learned from the corpus text first; each example is a',
    'user turn and an assistant turn rendered with its ChatML template, and the loss counts the',
    'assistant tokens only (the prompt is context). Progress goes to stderr. The output directory is a',
    'Hugging Face checkpoint (config.json, model.safetensors, tokenizer.json, tokenizer_config.json with',
    `the chat template, generation_config.json) and ${PRETRAIN_RECORD_FILE}: the command, seed, data sizes,`,
    'losses, wall time, backend, machine load, and the greedy accuracy on the suite\'s test sets.',
    '',
    'Options:',
    describeConfig(pretrainOptions),
  ].join('\n');
}

/** Mean loss per epoch, and the tokens a run has seen, from its steps. */
interface LossLog {
  first: number;
  epochSums: number[];
  epochSteps: number[];
  recent: number[];
  tokens: number;
  responseTokens: number;
}

/** One line of progress. */
function progressLine(p: TrainProgress, epochs: number, log: LossLog): string {
  const mean = log.recent.reduce((a, b) => a + b, 0) / log.recent.length;
  const eta = p.step > 0 ? (p.elapsedSeconds / p.step) * (p.totalSteps - p.step) : 0;
  return (
    `step ${p.step}/${p.totalSteps}  epoch ${p.epoch + 1}/${epochs}  loss ${mean.toFixed(4)}  lr ${p.learningRate.toExponential(2)}` +
    `  ${Math.round(p.tokensPerSecond)} tok/s  ${formatSeconds(p.elapsedSeconds)} (eta ${formatSeconds(eta)})`
  );
}

function formatSeconds(seconds: number): string {
  if (seconds < 60) return `${seconds.toFixed(1)}s`;
  return `${Math.floor(seconds / 60)}m${String(Math.round(seconds % 60)).padStart(2, '0')}s`;
}

function quoteArg(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, "'\\''")}'`;
}

function writeJsonAtomically(file: string, value: unknown): void {
  const temporary = `${file}.tmp-${process.pid}`;
  writeFileSync(temporary, JSON.stringify(value, null, 2) + '\n');
  renameSync(temporary, file);
}

/** Greedy answers of the model to the test items, accuracy per task. */
async function evaluateGreedy(lm: LanguageModel, items: readonly TaskItem[], maxNewTokens: number, onTokens: (n: number) => void): Promise<EvaluationReport> {
  let done = 0;
  return evaluate(
    items,
    async (prompts) => {
      const results = await lm.generateText(
        prompts.map((prompt, i) => ({ key: `eval/${done + i}`, prompt: { messages: [{ role: 'user', content: prompt }] } })),
        { maxNewTokens, temperature: 0, topP: 1, topK: 0, seed: 0 },
      );
      done += prompts.length;
      for (const r of results) onTokens(r.tokenIds.length);
      return results.map((r) => r.text);
    },
    {
      batchSize: 25,
      onProgress: (n, total) => process.stderr.write(`eval ${n}/${total}\n`),
    },
  );
}

/** Runs `cream pretrain`; resolves with the exit code. */
export async function pretrain(argv: readonly string[], env: Record<string, string | undefined>): Promise<number> {
  if (wantsHelp(pretrainOptions, argv)) {
    process.stdout.write(pretrainHelp() + '\n');
    return 0;
  }
  const options = readConfig(pretrainOptions, { argv, env });
  rejectPositionals(options.positionals, usage);
  const startedAt = new Date();
  const wallStart = performance.now();
  const loadAtStart = loadavg();

  const fileConfig = readHfConfig(options.config);
  const hfConfig = options.vocabSize === 'config' ? fileConfig : { ...fileConfig, vocab_size: options.vocabSize };
  try {
    modelConfigFromHf(hfConfig);
  } catch (error) {
    if (error instanceof ModelConfigError) throw new InputFileError(`${options.config}: ${error.message}`, options.config, undefined, { cause: error });
    throw error;
  }
  const out = resolve(options.out);
  if (!options.force && nonEmptyDirectory(out)) throw new CheckpointError(`${out} already exists and is not empty; --force replaces it`, 'exists', out);

  // The corpus: user and assistant turns of the suite's pretraining split.
  const suite = buildSuite({ seed: BUILTIN_SUITE_SEED, sizes: { pretrainPerTask: options.pretrainPerTask } });
  const corpusText = suite.pretrain.map((e) => e.messages.map((m) => m.content).join('\n')).join('\n');

  const info = await startCompute(env, 'pretrain');
  const backend = describeBackend(info);
  const scratch = mkdtempSync(join(tmpdir(), 'cream-pretrain-'));
  let lm: LanguageModel;
  let mergeCount: number;
  try {
    // A random model of the shape with a tokenizer learned from the corpus, loaded trainable.
    try {
      await initCheckpoint(scratch, hfConfig, { seed: options.seed, corpus: corpusText, overwrite: true });
    } catch (error) {
      if (error instanceof TokenizerError && error.kind === 'invalid-argument') {
        throw new InputFileError(`--vocab-size / ${options.config}: ${error.message}`, options.config, undefined, { cause: error });
      }
      throw error;
    }
    lm = await LanguageModel.load(scratch, { trainable: true, scope: 'pretrain' });
    mergeCount = (JSON.parse(lm.tokenizer.files.tokenizerJson) as { model: { merges: unknown[] } }).model.merges.length;
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }

  try {
    const tokenizeStart = performance.now();
    const examples: SftExample[] = suite.pretrain.map((e) => ({
      id: e.id,
      promptIds: lm.promptIds({ messages: [{ role: 'user', content: e.messages[0].content }] }),
      responseIds: lm.responseIds(e.messages[1].content),
    }));
    const promptTokens = examples.reduce((sum, e) => sum + e.promptIds.length, 0);
    const responseTokens = examples.reduce((sum, e) => sum + e.responseIds.length, 0);
    const longest = Math.max(...examples.map((e) => e.promptIds.length + e.responseIds.length));
    const summary = summarizeSuite(suite);
    process.stderr.write(
      `model: ${lm.numParameters.toLocaleString('en-US')} parameters; tokenizer: ${lm.config.vocabSize} ids (${mergeCount} merges)\n` +
        `corpus: ${examples.length} examples (${summary.pretrainQuality.correct} correct, ${summary.pretrainQuality.wrong} wrong, ` +
        `${summary.pretrainQuality['bad-format']} badly formatted), ${promptTokens + responseTokens} tokens of which ${responseTokens} ` +
        `assistant tokens, longest ${longest}; tokenized in ${formatSeconds((performance.now() - tokenizeStart) / 1000)}\n`,
    );

    // Training, with the tokens seen counted from the same seeded order the trainer draws.
    const hyper = { learningRate: options.lr, epochs: options.epochs, batchSize: options.batchSize, warmupRatio: 0.05, weightDecay: 0.01, maxGradNorm: 1, schedule: 'cosine' as const, seed: options.seed };
    const stepsPerEpoch = Math.ceil(examples.length / options.batchSize);
    const log: LossLog = { first: NaN, epochSums: [], epochSteps: [], recent: [], tokens: 0, responseTokens: 0 };
    const orders = new Map<number, number[]>();
    const every = Math.max(1, Math.ceil((stepsPerEpoch * options.epochs) / 100));
    const abort = new AbortController();
    let lastLine = performance.now();
    let trained: TrainProgress | null = null;
    let stoppedEarly = false;
    const padTokenId = lm.tokenizer.padTokenId ?? 0;
    try {
      await trainSft(lm.model, examples, hyper, {
        padTokenId,
        signal: abort.signal,
        onStep: (p) => {
          if (!orders.has(p.epoch)) orders.set(p.epoch, shuffledOrder(examples.length, options.seed, p.epoch));
          const start = ((p.step - 1) % stepsPerEpoch) * options.batchSize;
          for (const i of (orders.get(p.epoch) as number[]).slice(start, start + options.batchSize)) {
            log.tokens += examples[i].promptIds.length + examples[i].responseIds.length;
            log.responseTokens += examples[i].responseIds.length;
          }
          if (p.step === 1) log.first = p.loss;
          log.epochSums[p.epoch] = (log.epochSums[p.epoch] ?? 0) + p.loss;
          log.epochSteps[p.epoch] = (log.epochSteps[p.epoch] ?? 0) + 1;
          log.recent.push(p.loss);
          if (log.recent.length > 50) log.recent.shift();
          trained = p;
          if (p.step % every === 0 || p.step === p.totalSteps || performance.now() - lastLine > 30_000) {
            process.stderr.write(progressLine(p, options.epochs, log) + '\n');
            lastLine = performance.now();
          }
          if (options.maxSeconds > 0 && p.elapsedSeconds >= options.maxSeconds && p.step < p.totalSteps) {
            stoppedEarly = true;
            abort.abort(new Error(`--max-seconds ${options.maxSeconds} reached`));
          }
        },
      });
    } catch (error) {
      if (!(stoppedEarly && error instanceof TrainingCancelledError)) throw error;
      process.stderr.write(`stopped after step ${error.step}: --max-seconds ${options.maxSeconds} reached\n`);
    }
    const progress = trained as TrainProgress | null;
    if (progress === null) throw new Error('training ran no step');
    const finalLoss = log.recent.reduce((a, b) => a + b, 0) / log.recent.length;

    // The checkpoint: sampling defaults for the CREAM iterations, <|im_end|> ends a turn.
    const eos = lm.eosTokenIds[0];
    const generationConfig = { eos_token_id: eos, pad_token_id: padTokenId, do_sample: true, temperature: 0.8, top_p: 0.95, max_new_tokens: options.maxNewTokens };
    const files = await saveCheckpoint(
      out,
      { hfConfig: lm.hfConfig, tensors: await toHostTensors(lm.weights), tokenizer: lm.tokenizer, generationConfig },
      { overwrite: options.force },
    );
    const trainSeconds = progress.elapsedSeconds;
    const record: Record<string, unknown> = {
      command: ['cream', 'pretrain', ...argv].map(quoteArg).join(' '),
      date: startedAt.toISOString(),
      seed: options.seed,
      backend,
      machine: { cpus: cpus().length, loadAverageAtStart: loadAtStart.map((x) => Number(x.toFixed(2))) },
      model: {
        architecture: lm.config.architecture,
        parameters: lm.numParameters,
        vocabSize: lm.config.vocabSize,
        hiddenSize: lm.config.hiddenSize,
        intermediateSize: lm.config.intermediateSize,
        layers: lm.config.nLayers,
        heads: lm.config.nHeads,
        kvHeads: lm.config.nKvHeads,
        contextLength: lm.config.maxPositionEmbeddings,
        tiedEmbeddings: lm.config.tieWordEmbeddings,
      },
      tokenizer: { kind: 'byte-level BPE', vocabSize: lm.config.vocabSize, merges: mergeCount, learnedFrom: 'the user and assistant turns of the corpus', chatTemplate: 'ChatML' },
      data: {
        suite: 'built-in',
        suiteSeed: BUILTIN_SUITE_SEED,
        split: 'pretrain',
        examples: examples.length,
        perTask: options.pretrainPerTask,
        quality: summary.pretrainQuality,
        promptTokens,
        assistantTokens: responseTokens,
        longestSequence: longest,
      },
      training: {
        lossOn: 'assistant tokens only (prompt masked), mean per token',
        epochs: options.epochs,
        batchSize: options.batchSize,
        learningRate: options.lr,
        warmupRatio: hyper.warmupRatio,
        schedule: hyper.schedule,
        weightDecay: hyper.weightDecay,
        maxGradNorm: hyper.maxGradNorm,
        steps: progress.step,
        plannedSteps: progress.totalSteps,
        stoppedEarly,
        maxSeconds: options.maxSeconds,
        tokensSeen: log.tokens,
        assistantTokensSeen: log.responseTokens,
        firstLoss: log.first,
        finalLoss,
        epochMeanLoss: log.epochSums.map((sum, i) => sum / log.epochSteps[i]),
        seconds: Number(trainSeconds.toFixed(1)),
      },
      files,
    };
    const recordFile = join(out, PRETRAIN_RECORD_FILE);
    writeJsonAtomically(recordFile, { ...record, wallSeconds: Number(((performance.now() - wallStart) / 1000).toFixed(1)) });

    // Greedy accuracy on the held-out test sets.
    let report: EvaluationReport | undefined;
    if (options.evalPerTask > 0) {
      const items = suite.tasks.flatMap((task) => suite.test[task].slice(0, options.evalPerTask));
      const evalStart = performance.now();
      let generated = 0;
      report = await evaluateGreedy(lm, items, options.maxNewTokens, (n) => (generated += n));
      record.evaluation = {
        split: 'test',
        decoding: 'greedy, chat template',
        maxNewTokens: options.maxNewTokens,
        items: report.numItems,
        meanAccuracy: report.meanAccuracy,
        unparsable: report.numUnparsable,
        meanAnswerTokens: Number((generated / report.numItems).toFixed(1)),
        tasks: report.tasks.map(({ task, accuracy, numItems, numCorrect, numUnparsable }) => ({ task, accuracy, numItems, numCorrect, numUnparsable })),
        seconds: Number(((performance.now() - evalStart) / 1000).toFixed(1)),
      };
    }
    const wallSeconds = (performance.now() - wallStart) / 1000;
    record.machine = { ...(record.machine as object), loadAverageAtEnd: loadavg().map((x) => Number(x.toFixed(2))) };
    writeJsonAtomically(recordFile, { ...record, wallSeconds: Number(wallSeconds.toFixed(1)) });

    const size = [...files, PRETRAIN_RECORD_FILE].reduce((sum, f) => sum + statSync(join(out, f)).size, 0);
    const lines = [
      `wrote ${out} (${(size / 1024 / 1024).toFixed(2)} MiB)`,
      `  parameters   ${lm.numParameters.toLocaleString('en-US')}`,
      `  steps        ${progress.step}/${progress.totalSteps}${stoppedEarly ? ' (stopped by --max-seconds)' : ''}`,
      `  tokens seen  ${log.tokens.toLocaleString('en-US')} (${log.responseTokens.toLocaleString('en-US')} in the loss)`,
      `  loss         ${log.first.toFixed(4)} -> ${finalLoss.toFixed(4)} (mean of the last ${log.recent.length} steps)`,
      `  seconds      ${trainSeconds.toFixed(1)} training, ${wallSeconds.toFixed(1)} in all`,
      `  backend      ${backend}`,
      ...(report === undefined
        ? []
        : [
            `  accuracy     ${(report.meanAccuracy * 100).toFixed(1)}% mean, greedy on ${report.numItems} test items`,
            ...report.tasks.map((t) => `    ${t.task.padEnd(12)}${(t.accuracy * 100).toFixed(1)}%  (${t.numCorrect}/${t.numItems}, ${t.numUnparsable} unparsable)`),
          ]),
    ];
    process.stdout.write(lines.join('\n') + '\n');
    return 0;
  } finally {
    lm.dispose();
  }
}
