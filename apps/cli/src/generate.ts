// `cream generate`: loads a checkpoint and continues one prompt, printing the
// text (or, with --json, the text, token ids, finish reason and log-prob).
// The prompt is a user chat turn when the tokenizer has a chat template (what
// an instruction-following model expects), raw text with --raw. Sampling flags
// left out come from the checkpoint's generation_config.json, as transformers
// does, and greedy decoding when it has none.
import { ContextLengthError, LanguageModel, type PromptInput } from '@cream/model';
import { ConfigError, describeConfig, option, readConfig, type OptionSpec } from '@cream/service-kit';
import { rejectPositionals, startCompute, takeRepeated, wantsHelp } from './model-command';

const usage = 'cream generate --model DIR --prompt TEXT [--raw] [--temperature T] [--top-p P] [--top-k K] [--max-new-tokens N] [--seed S] [--stop STR]... [--json]';

// An option that may also be `model`: take the value from the checkpoint.
function orModel(spec: OptionSpec<number>): OptionSpec<number | 'model'> {
  return { ...spec, kind: `${spec.kind} | model`, default: 'model', parse: (raw) => (raw.trim() === 'model' ? 'model' : spec.parse(raw)) };
}

const boolOption = option.bool({ flag: 'chat', description: '' });
const chatOption: OptionSpec<boolean | 'auto'> = {
  flag: 'chat',
  description: 'render --prompt as a user turn with the chat template; auto: when the tokenizer has one',
  kind: 'bool | auto',
  isSwitch: true,
  default: 'auto',
  parse: (raw) => (raw.trim() === 'auto' ? 'auto' : boolOption.parse(raw)),
};

const generateOptions = {
  model: option.string({ flag: 'model', description: 'checkpoint directory (config.json, model.safetensors, tokenizer.json)', nonEmpty: true }),
  prompt: option.string({ flag: 'prompt', description: 'what the model continues' }),
  chat: chatOption,
  raw: option.bool({ flag: 'raw', description: 'tokenize --prompt as raw text, no chat template (same as --chat=false)', default: false }),
  temperature: orModel(option.number({ flag: 'temperature', description: 'sampling temperature, 0 is greedy; model: generation_config.json (greedy unless do_sample)', min: 0, max: 100 })),
  topP: orModel(option.number({ flag: 'top-p', description: 'nucleus mass in (0, 1]; model: generation_config.json, else 1', min: 0, max: 1 })),
  topK: orModel(option.int({ flag: 'top-k', description: 'keep the K most likely tokens, 0 is off; model: generation_config.json, else 50', min: 0, max: 1_000_000 })),
  maxNewTokens: option.int({ flag: 'max-new-tokens', description: 'most tokens to generate (the context length also ends generation)', default: 128, min: 1, max: 1_000_000 }),
  seed: option.int({ flag: 'seed', description: 'sampling seed: the same seed and options give the same text', default: 0, min: 0, max: Number.MAX_SAFE_INTEGER }),
  stop: option.string({ flag: 'stop', description: 'stop when the text contains STR (removed from the output); repeatable', default: '' }),
  json: option.bool({ flag: 'json', description: 'print {text, token_ids, finish_reason, logprob_sum, num_prompt_tokens} as JSON', default: false }),
  help: option.bool({ flag: 'help', description: 'print this help and exit', default: false }),
};

/** Help for `cream generate`. */
export function generateHelp(): string {
  return [
    `Usage: ${usage}`,
    '',
    'Continues one prompt with a checkpoint and prints the generated text to stdout (special tokens',
    'skipped, a --stop string removed). The prompt is a user chat turn, rendered with the tokenizer\'s',
    'chat template and the assistant prompt, when the tokenizer has one; --raw tokenizes it as is.',
    'Sampling options left out are read from the checkpoint\'s generation_config.json (as transformers',
    'does); without one, decoding is greedy. Temperature 0 is greedy and deterministic; sampling is',
    'reproducible for a given --seed.',
    '',
    'Options:',
    describeConfig(generateOptions),
  ].join('\n');
}

/** Sampling parameters: the flags, else generation_config.json, else transformers' defaults; and a line saying so. */
function samplingOf(
  flags: { temperature: number | 'model'; topP: number | 'model'; topK: number | 'model'; seed: number },
  generationConfig: Record<string, unknown> | undefined,
): { temperature: number; topP: number; topK: number; summary: string } {
  const gc = generationConfig ?? {};
  const num = (key: string) => (typeof gc[key] === 'number' && Number.isFinite(gc[key]) ? (gc[key] as number) : undefined);
  const doSample = gc.do_sample === true;
  const temperature = flags.temperature !== 'model' ? flags.temperature : doSample ? (num('temperature') ?? 1) : 0;
  const topP = flags.topP !== 'model' ? flags.topP : (num('top_p') ?? 1);
  const topK = flags.topK !== 'model' ? flags.topK : (num('top_k') ?? 50);
  const source = generationConfig ? 'generation_config.json' : 'transformers\' defaults';
  const summary =
    temperature === 0
      ? `greedy${flags.temperature === 'model' ? ` (${source})` : ''}`
      : `temperature ${temperature}, top-p ${topP}, top-k ${topK}, seed ${flags.seed}` +
        ([flags.temperature, flags.topP, flags.topK].includes('model') ? ` (options not given: ${source})` : '');
  return { temperature, topP, topK, summary };
}

/** Runs `cream generate`; resolves with the exit code. */
export async function generate(argv: readonly string[], env: Record<string, string | undefined>): Promise<number> {
  if (wantsHelp(generateOptions, argv)) {
    process.stdout.write(generateHelp() + '\n');
    return 0;
  }
  const { values: stop, rest } = takeRepeated(generateOptions, argv, 'stop');
  const config = readConfig(generateOptions, { argv: rest, env });
  rejectPositionals(config.positionals, usage);
  if (config.raw && config.chat === true) throw new ConfigError('--chat and --raw contradict each other; give one', '--raw');
  if (config.topP === 0) throw new ConfigError('--top-p: 0 keeps no token; give a mass in (0, 1]', '--top-p');
  if (stop.some((s) => s === '')) throw new ConfigError('--stop: a stop string must not be empty', '--stop');

  await startCompute(env, 'generate');
  const model = await LanguageModel.load(config.model);
  try {
    const hasTemplate = model.tokenizer.chatTemplate() !== undefined;
    if (config.chat === true && !hasTemplate) throw new ConfigError(`--chat: the tokenizer of ${config.model} has no chat template; use --raw`, '--chat');
    const chat = config.raw ? false : config.chat === 'auto' ? hasTemplate : config.chat;
    const prompt: PromptInput = chat ? { messages: [{ role: 'user', content: config.prompt }] } : { text: config.prompt };
    const context = model.config.maxPositionEmbeddings;
    const promptLength = model.promptIds(prompt).length;
    if (promptLength >= context) {
      throw new ContextLengthError(
        `--prompt has ${promptLength} tokens${chat ? ' with the chat template' : ''}; the model's context length is ${context}, leaving no room to generate`,
        promptLength,
        context - 1,
      );
    }
    const sampling = samplingOf(config, model.generationConfig);
    process.stderr.write(
      `sampling: ${sampling.summary}; ${chat ? 'chat template' : 'raw prompt'}, ${promptLength} prompt tokens\n`,
    );
    const [result] = await model.generateText([{ key: 'cli', prompt }], {
      maxNewTokens: config.maxNewTokens,
      temperature: sampling.temperature,
      topP: sampling.topP,
      topK: sampling.topK,
      seed: config.seed,
      stop,
    });
    if (config.json) {
      const json = {
        text: result.text,
        token_ids: result.tokenIds,
        finish_reason: result.finishReason,
        logprob_sum: result.logprobSum,
        num_prompt_tokens: result.numPromptTokens,
      };
      process.stdout.write(JSON.stringify(json) + '\n');
    } else {
      process.stdout.write(result.text + '\n');
      process.stderr.write(`finish: ${result.finishReason}, ${result.tokenIds.length} new tokens, logprob sum ${result.logprobSum.toFixed(4)}\n`);
    }
    return 0;
  } finally {
    model.dispose();
  }
}
