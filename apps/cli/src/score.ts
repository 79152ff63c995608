// `cream score`: the log-probability of responses given prompts under a
// checkpoint, from a JSONL file (text or token ids per line) to JSONL
// (logprob_sum, logprob_mean, num_tokens per line, in input order). Every line
// is checked before any is scored, and --output is written whole or not at all.
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { LanguageModel, type ChatMessage, type PromptInput } from '@cream/model';
import { describeConfig, option, readConfig } from '@cream/service-kit';
import { InputFileError, readInputFile, rejectPositionals, startCompute, wantsHelp } from './model-command';

const usage = 'cream score --model DIR --input FILE.jsonl [--output FILE] [--batch-size N] [--raw]';

const scoreOptions = {
  model: option.string({ flag: 'model', description: 'checkpoint directory (config.json, model.safetensors, tokenizer.json)', nonEmpty: true }),
  input: option.string({ flag: 'input', description: 'JSONL file, one item per line (see above)', nonEmpty: true }),
  output: option.string({ flag: 'output', description: 'JSONL file to write (whole or not at all); default stdout', default: '' }),
  batchSize: option.int({ flag: 'batch-size', description: 'items per forward pass (changes speed, not the scores beyond float rounding)', default: 8, min: 1, max: 4096 }),
  raw: option.bool({ flag: 'raw', description: 'tokenize a string "prompt" as raw text even when the tokenizer has a chat template', default: false }),
  help: option.bool({ flag: 'help', description: 'print this help and exit', default: false }),
};

/** Help for `cream score`. */
export function scoreHelp(): string {
  return [
    `Usage: ${usage}`,
    '',
    'Scores each response given its prompt: the sum and mean log-probability of the response tokens',
    '(prompt tokens masked). Each input line is a JSON object in one of two forms:',
    '  text: "prompt" (a string) or "messages" ([{"role", "content"}, ...]), and "response" (a string).',
    '        A string prompt is one user chat turn when the tokenizer has a chat template (--raw: raw',
    '        text), else raw text; messages are the conversation before the response. Both are rendered',
    '        with the assistant prompt. The response is its text tokens plus the end-of-turn (EOS) token.',
    '  ids:  "prompt_ids" and "response_ids", arrays of token ids, scored as given.',
    'Blank lines are skipped. Each output line is {"logprob_sum", "logprob_mean", "num_tokens"}, in input',
    'order. A malformed line stops the command (exit 1) with FILE:LINE in the message, before anything',
    'is scored or written.',
    '',
    'Options:',
    describeConfig(scoreOptions),
  ].join('\n');
}

/** One input line, its shape checked, not yet tokenized. */
type ScoreLine =
  | { line: number; form: 'text'; prompt: string | ChatMessage[]; response: string }
  | { line: number; form: 'ids'; promptIds: number[]; responseIds: number[] };

const TEXT_FIELDS = ['prompt', 'messages', 'response'];
const ID_FIELDS = ['prompt_ids', 'response_ids'];

function parseIds(value: unknown, field: string, fail: (message: string) => never): number[] {
  if (!Array.isArray(value)) fail(`"${field}" must be an array of token ids, got ${JSON.stringify(value)?.slice(0, 40)}`);
  const ids = value as unknown[];
  ids.forEach((id, i) => {
    if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0) fail(`"${field}"[${i}] is not a token id: ${JSON.stringify(id)}`);
  });
  return ids as number[];
}

function parseMessages(value: unknown, fail: (message: string) => never): ChatMessage[] {
  if (!Array.isArray(value) || value.length === 0) fail('"messages" must be a non-empty array of {"role", "content"} objects');
  return (value as unknown[]).map((m, i) => {
    const message = m as Record<string, unknown>;
    if (typeof m !== 'object' || m === null || typeof message.role !== 'string' || typeof message.content !== 'string') {
      fail(`"messages"[${i}] must be an object with string "role" and "content"`);
    }
    return message as ChatMessage;
  });
}

/** Reads and checks every line's shape (no model needed), so a bad file fails before the model loads. */
function readScoreLines(file: string): ScoreLine[] {
  const text = readInputFile(file);
  const items: ScoreLine[] = [];
  text.split('\n').forEach((raw, index) => {
    const line = index + 1;
    const fail = (message: string): never => {
      throw new InputFileError(`${file}:${line}: ${message}`, file, line);
    };
    const source = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (source.trim() === '') return;
    let json: unknown;
    try {
      json = JSON.parse(source);
    } catch (cause) {
      fail(`not valid JSON (${(cause as Error).message})`);
    }
    if (typeof json !== 'object' || json === null || Array.isArray(json)) fail('must be a JSON object');
    const o = json as Record<string, unknown>;
    const hasText = TEXT_FIELDS.some((f) => o[f] !== undefined);
    const hasIds = ID_FIELDS.some((f) => o[f] !== undefined);
    if (hasText && hasIds) fail('holds both text fields (prompt/messages/response) and id fields (prompt_ids/response_ids); use one form');
    if (hasIds) {
      items.push({ line, form: 'ids', promptIds: parseIds(o.prompt_ids, 'prompt_ids', fail), responseIds: parseIds(o.response_ids, 'response_ids', fail) });
      return;
    }
    if (!hasText) fail('needs "prompt" (or "messages") and "response", or "prompt_ids" and "response_ids"');
    if (o.prompt !== undefined && o.messages !== undefined) fail('holds both "prompt" and "messages"; give one');
    if (typeof o.response !== 'string') fail(`"response" must be a string, got ${JSON.stringify(o.response) ?? 'nothing'}`);
    let prompt: string | ChatMessage[];
    if (o.messages !== undefined) prompt = parseMessages(o.messages, fail);
    else if (typeof o.prompt === 'string') prompt = o.prompt;
    else fail(`"prompt" must be a string, got ${JSON.stringify(o.prompt) ?? 'nothing'}`);
    items.push({ line, form: 'text', prompt: prompt!, response: o.response as string });
  });
  return items;
}

/** Token ids of every line, checked against the vocabulary and the context; errors name FILE:LINE. */
function tokenize(model: LanguageModel, file: string, lines: readonly ScoreLine[], raw: boolean): Array<{ promptIds: number[]; responseIds: number[] }> {
  const chat = !raw && model.tokenizer.chatTemplate() !== undefined;
  const { vocabSize, maxPositionEmbeddings: context } = model.config;
  return lines.map((item) => {
    const fail = (message: string): never => {
      throw new InputFileError(`${file}:${item.line}: ${message}`, file, item.line);
    };
    let promptIds: number[];
    let responseIds: number[];
    if (item.form === 'ids') {
      ({ promptIds, responseIds } = item);
      for (const [field, ids] of [['prompt_ids', promptIds], ['response_ids', responseIds]] as const) {
        const bad = ids.findIndex((id) => id >= vocabSize);
        if (bad !== -1) fail(`"${field}"[${bad}] = ${ids[bad]} is outside the vocabulary (${vocabSize} ids)`);
      }
    } else {
      let prompt: PromptInput;
      if (typeof item.prompt !== 'string') prompt = { messages: item.prompt };
      else prompt = chat ? { messages: [{ role: 'user', content: item.prompt }] } : { text: item.prompt };
      try {
        promptIds = model.promptIds(prompt);
      } catch (error) {
        fail(`the prompt cannot be rendered: ${(error as Error).message}`);
      }
      responseIds = model.responseIds(item.response);
    }
    if (promptIds!.length === 0) fail('the prompt has no tokens (scoring needs at least one to condition on)');
    if (responseIds!.length === 0) fail('the response has no tokens');
    const length = promptIds!.length + responseIds!.length;
    if (length > context) fail(`prompt and response have ${length} tokens; the model's context length is ${context}`);
    return { promptIds: promptIds!, responseIds: responseIds! };
  });
}

// Writes a file whole or not at all: a temporary sibling, then a rename.
function writeAtomically(file: string, text: string): void {
  const target = resolve(file);
  mkdirSync(dirname(target), { recursive: true });
  const temporary = join(dirname(target), `.${basename(target)}.tmp-${process.pid}`);
  try {
    writeFileSync(temporary, text);
    renameSync(temporary, target);
  } catch (error) {
    rmSync(temporary, { force: true });
    throw error;
  }
}

/** Runs `cream score`; resolves with the exit code. */
export async function score(argv: readonly string[], env: Record<string, string | undefined>): Promise<number> {
  if (wantsHelp(scoreOptions, argv)) {
    process.stdout.write(scoreHelp() + '\n');
    return 0;
  }
  const config = readConfig(scoreOptions, { argv, env });
  rejectPositionals(config.positionals, usage);
  const started = Date.now();
  const lines = readScoreLines(config.input);
  await startCompute(env, 'score');
  const model = await LanguageModel.load(config.model);
  let output: string;
  try {
    const items = tokenize(model, config.input, lines, config.raw);
    const scores = items.length === 0 ? [] : await model.scoreIds(items, { batchSize: config.batchSize });
    output = scores.map((s) => JSON.stringify({ logprob_sum: s.logprobSum, logprob_mean: s.logprobMean, num_tokens: s.numTokens }) + '\n').join('');
  } finally {
    model.dispose();
  }
  if (config.output) writeAtomically(config.output, output);
  else process.stdout.write(output);
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  process.stderr.write(`scored ${lines.length} item${lines.length === 1 ? '' : 's'} from ${config.input} in ${seconds} s${config.output ? ` -> ${config.output}` : ''}\n`);
  return 0;
}
