// `cream init-model`: writes a random Hugging Face checkpoint of the
// architecture a config.json describes (with a byte-level BPE tokenizer of
// exactly vocab_size ids and a ChatML template), seeded, and prints what it
// wrote. Example configs ship in apps/cli/configs/.
import { statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { CheckpointError, initCheckpoint, ModelConfigError, modelConfigFromHf, TokenizerError } from '@cream/model';
import { describeConfig, option, readConfig } from '@cream/service-kit';
import { InputFileError, nonEmptyDirectory, readHfConfig, rejectPositionals, startCompute, wantsHelp } from './model-command';

const usage = 'cream init-model --config CONFIG.json --out DIR [--seed S] [--force]';

const initModelOptions = {
  config: option.string({ flag: 'config', description: 'a Hugging Face config.json (architectures, sizes); see apps/cli/configs/', nonEmpty: true }),
  out: option.string({ flag: 'out', description: 'directory to write the checkpoint to (created; must be empty unless --force)', nonEmpty: true }),
  seed: option.int({ flag: 'seed', description: 'seed of the random weights: the same seed writes the same bytes', default: 0, min: 0, max: Number.MAX_SAFE_INTEGER }),
  force: option.bool({ flag: 'force', description: 'replace a non-empty --out directory', default: false }),
  help: option.bool({ flag: 'help', description: 'print this help and exit', default: false }),
};

/** Help for `cream init-model`. */
export function initModelHelp(): string {
  return [
    `Usage: ${usage}`,
    '',
    'Writes a random checkpoint of the architecture in CONFIG.json (LlamaForCausalLM, MistralForCausalLM,',
    'Qwen2ForCausalLM, Qwen3ForCausalLM) in Hugging Face layout: config.json, model.safetensors,',
    'generation_config.json, and a byte-level BPE tokenizer of exactly vocab_size ids with a ChatML',
    'chat template (<|im_end|> ends a turn; its id becomes eos_token_id). The directory is written',
    'atomically: a failure leaves nothing behind.',
    '',
    'Options:',
    describeConfig(initModelOptions),
  ].join('\n');
}

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/** Runs `cream init-model`; resolves with the exit code. */
export async function initModel(argv: readonly string[], env: Record<string, string | undefined>): Promise<number> {
  if (wantsHelp(initModelOptions, argv)) {
    process.stdout.write(initModelHelp() + '\n');
    return 0;
  }
  const config = readConfig(initModelOptions, { argv, env });
  rejectPositionals(config.positionals, usage);
  const hfConfig = readHfConfig(config.config);
  const out = resolve(config.out);
  // The config's faults name its file (the library names only the field), and
  // are found before the backend starts.
  const configFault = (error: unknown) =>
    error instanceof ModelConfigError || (error instanceof TokenizerError && error.kind === 'invalid-argument')
      ? new InputFileError(`${config.config}: ${error.message}`, config.config, undefined, { cause: error })
      : error;
  try {
    modelConfigFromHf(hfConfig);
  } catch (error) {
    throw configFault(error);
  }
  if (!config.force && nonEmptyDirectory(out)) throw new CheckpointError(`${out} already exists and is not empty; --force replaces it`, 'exists', out);
  await startCompute(env, 'init-model');
  let result;
  try {
    result = await initCheckpoint(out, hfConfig, { seed: config.seed, overwrite: config.force });
  } catch (error) {
    if (error instanceof CheckpointError && error.kind === 'exists') {
      throw new CheckpointError(`${out} already exists and is not empty; --force replaces it`, 'exists', out, { cause: error });
    }
    throw configFault(error);
  }
  const c = result.config;
  const heads = c.nKvHeads === c.nHeads ? `${c.nHeads} heads` : `${c.nHeads} heads (${c.nKvHeads} key/value)`;
  const features = [c.attentionBias ? 'q/k/v biases' : '', c.attentionOutputBias ? 'o bias' : '', c.qkNorm ? 'q/k norms' : '', c.tieWordEmbeddings ? 'tied embeddings' : '']
    .filter((f) => f !== '')
    .join(', ');
  const lines = [
    `wrote ${out}`,
    `  architecture  ${c.architecture}${features ? ` (${features})` : ''}`,
    `  parameters    ${result.numParameters.toLocaleString('en-US')}`,
    `  shape         vocab ${c.vocabSize}, hidden ${c.hiddenSize}, ${c.nLayers} layers, ${heads}, head dim ${c.headDim}, mlp ${c.intermediateSize}, context ${c.maxPositionEmbeddings}`,
    `  seed          ${config.seed}`,
    '  files',
    ...result.files.map((f) => `    ${f.padEnd(26)}${formatBytes(statSync(join(out, f)).size)}`),
  ];
  process.stdout.write(lines.join('\n') + '\n');
  return 0;
}
