// `cream init-model`: a random Hugging Face checkpoint of a given
// architecture, with a byte-level BPE tokenizer of exactly the model's
// vocabulary size (ChatML template, <|im_end|> as EOS), written atomically.
import { modelConfigFromHf, modelConfigToHf, type ModelConfig } from './config';
import { buildByteLevelBpeTokenizer } from './hf/byte-level-bpe';
import { saveCheckpoint } from './hf/checkpoint';
import { toHostTensors } from './hf/host-tensors';
import { disposeWeights, initWeights } from './weights';

/** What initCheckpoint wrote. */
export interface InitCheckpointResult {
  /** The configuration, with bos/eos set from the tokenizer. */
  config: ModelConfig;
  /** Files written. */
  files: string[];
  /** Number of parameters. */
  numParameters: number;
}

/**
 * Writes a random checkpoint of the architecture in `hfConfig` (a config.json
 * object) to `dir`, seeded. The tokenizer's special tokens become the config's
 * eos_token_id and pad; a config.json that names other ids is overridden,
 * since the ids must exist in the tokenizer written beside it.
 */
export async function initCheckpoint(dir: string, hfConfig: Record<string, unknown>, options: { seed?: number; corpus?: string; overwrite?: boolean } = {}): Promise<InitCheckpointResult> {
  const draft = modelConfigFromHf(hfConfig);
  const tokenizer = buildByteLevelBpeTokenizer({ vocabSize: draft.vocabSize, modelMaxLength: draft.maxPositionEmbeddings, corpus: options.corpus });
  const eos = tokenizer.specialTokenIds.get('<|im_end|>')!;
  const pad = tokenizer.specialTokenIds.get('<|endoftext|>')!;
  const config = modelConfigFromHf({ ...hfConfig, bos_token_id: null, eos_token_id: eos, pad_token_id: pad });
  const weights = initWeights(config, options.seed ?? 0, { scope: `init-${process.pid}-${Date.now()}` });
  try {
    const tensors = await toHostTensors(weights);
    const files = await saveCheckpoint(
      dir,
      {
        hfConfig: { ...modelConfigToHf(config), pad_token_id: pad },
        tensors,
        tokenizer: tokenizer.files,
        generationConfig: { eos_token_id: eos, pad_token_id: pad, do_sample: true, temperature: 0.8, top_p: 0.95 },
      },
      { overwrite: options.overwrite },
    );
    let numParameters = 0;
    for (const t of tensors.values()) numParameters += t.data.length;
    return { config, files, numParameters };
  } finally {
    disposeWeights(weights);
  }
}
