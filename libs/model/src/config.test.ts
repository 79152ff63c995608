// ModelConfig defaults and validation, and the config.json mapping on the
// config files of published checkpoints.
import { describe, expect, it } from 'vitest';
import { ModelConfigError, createModelConfig, modelConfigFromHf, modelConfigToHf, type ModelConfig } from './index';
import { LLAMA_3_2_1B_INSTRUCT, MISTRAL_7B_V0_1, QWEN2_5_0_5B_INSTRUCT, QWEN3_0_6B, SMOLLM_135M, TEST_CONFIGS } from './testing';

function configError(run: () => unknown): ModelConfigError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(ModelConfigError);
    return error as ModelConfigError;
  }
  throw new Error('expected a ModelConfigError');
}

describe('createModelConfig', () => {
  it('fills the defaults of a Llama config', () => {
    const config = createModelConfig({ vocabSize: 100, hiddenSize: 32, nLayers: 2, nHeads: 4, intermediateSize: 64 });
    expect(config).toMatchObject({
      architecture: 'llama', nKvHeads: 4, headDim: 8, ropeTheta: 10000, ropeScaling: null, rmsNormEps: 1e-6,
      maxPositionEmbeddings: 2048, attentionBias: false, attentionOutputBias: false, qkNorm: false,
      tieWordEmbeddings: false, bosTokenId: null, eosTokenIds: [], slidingWindow: null,
    });
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('gives Qwen2 q/k/v biases and Qwen3 q/k norms by default', () => {
    const sizes = { vocabSize: 10, hiddenSize: 8, nLayers: 1, nHeads: 2, intermediateSize: 8 };
    expect(createModelConfig({ ...sizes, architecture: 'qwen2' })).toMatchObject({ attentionBias: true, attentionOutputBias: false });
    expect(createModelConfig({ ...sizes, architecture: 'qwen3' })).toMatchObject({ qkNorm: true, attentionBias: false });
    expect(createModelConfig({ ...sizes, attentionBias: true })).toMatchObject({ attentionOutputBias: true });
  });

  it.each([
    [{ nHeads: 0 }, 'nHeads'],
    [{ nKvHeads: 3 }, 'nKvHeads'],
    [{ headDim: 5 }, 'headDim'],
    [{ hiddenSize: 30 }, 'headDim'], // 30 / 4 is not an integer
    [{ ropeTheta: -1 }, 'ropeTheta'],
    [{ rmsNormEps: 0 }, 'rmsNormEps'],
    [{ eosTokenIds: [100] }, 'eosTokenIds'],
    [{ bosTokenId: -1 }, 'bosTokenId'],
    [{ slidingWindow: 16 }, 'maxPositionEmbeddings'],
    [{ architecture: 'mistral', attentionBias: true }, 'attentionBias'],
    [{ architecture: 'qwen2', attentionBias: false }, 'attentionBias'],
    [{ qkNorm: true }, 'qkNorm'],
    [{ ropeScaling: { type: 'llama3', factor: 8, lowFreqFactor: 4, highFreqFactor: 1, originalMaxPositionEmbeddings: 8 } }, 'ropeScaling.highFreqFactor'],
  ] as const)('rejects %j (field %s)', (override, field) => {
    const input = { vocabSize: 100, hiddenSize: 32, nLayers: 2, nHeads: 4, intermediateSize: 64, maxPositionEmbeddings: 64, ...override };
    expect(configError(() => createModelConfig(input as never)).field).toBe(field);
  });
});

describe('modelConfigFromHf', () => {
  it('reads SmolLM-135M as Llama with GQA and tied embeddings', () => {
    expect(modelConfigFromHf(SMOLLM_135M)).toEqual({
      architecture: 'llama', vocabSize: 49152, hiddenSize: 576, nLayers: 30, nHeads: 9, nKvHeads: 3, headDim: 64,
      intermediateSize: 1536, ropeTheta: 10000, ropeScaling: null, rmsNormEps: 1e-5, maxPositionEmbeddings: 2048,
      attentionBias: false, attentionOutputBias: false, qkNorm: false, tieWordEmbeddings: true, bosTokenId: 0,
      eosTokenIds: [0], slidingWindow: null,
    });
  });

  it('reads Llama 3.2 rope scaling and its list of EOS ids', () => {
    const config = modelConfigFromHf(LLAMA_3_2_1B_INSTRUCT);
    expect(config.ropeScaling).toEqual({ type: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 });
    expect(config.eosTokenIds).toEqual([128001, 128008, 128009]);
    expect(config.ropeTheta).toBe(500000);
    expect(config.headDim).toBe(64);
  });

  it('reads Qwen2.5 with q/k/v biases and no window (use_sliding_window false)', () => {
    expect(modelConfigFromHf(QWEN2_5_0_5B_INSTRUCT)).toMatchObject({
      architecture: 'qwen2', attentionBias: true, attentionOutputBias: false, nKvHeads: 2, headDim: 64,
      maxPositionEmbeddings: 32768, slidingWindow: null, tieWordEmbeddings: true, ropeTheta: 1e6,
    });
  });

  it('reads Qwen3 with q/k norms and head_dim 128', () => {
    expect(modelConfigFromHf(QWEN3_0_6B)).toMatchObject({ architecture: 'qwen3', qkNorm: true, headDim: 128, hiddenSize: 1024, nHeads: 16 });
  });

  it("caps Mistral 7B v0.1's context at its sliding window", () => {
    expect(modelConfigFromHf(MISTRAL_7B_V0_1)).toMatchObject({ architecture: 'mistral', slidingWindow: 4096, maxPositionEmbeddings: 4096 });
    expect(modelConfigFromHf({ ...MISTRAL_7B_V0_1, sliding_window: null })).toMatchObject({ slidingWindow: null, maxPositionEmbeddings: 32768 });
  });

  it('reads transformers 5 rope_parameters', () => {
    const { rope_theta: _theta, rope_scaling: _scaling, ...rest } = LLAMA_3_2_1B_INSTRUCT;
    const config = modelConfigFromHf({
      ...rest,
      rope_parameters: { rope_type: 'llama3', rope_theta: 500000, factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
    });
    expect(config.ropeTheta).toBe(500000);
    expect(config.ropeScaling).toMatchObject({ type: 'llama3', factor: 32 });
  });

  it('falls back to model_type when architectures is absent', () => {
    const { architectures: _architectures, ...rest } = QWEN3_0_6B;
    expect(modelConfigFromHf(rest).architecture).toBe('qwen3');
  });

  it.each([
    ['not an object', [], undefined],
    ['unsupported architecture', { ...SMOLLM_135M, architectures: ['GPT2LMHeadModel'] }, 'architectures'],
    ['unsupported model_type', { model_type: 'gemma', vocab_size: 10 }, 'model_type'],
    ['missing hidden_size', { ...SMOLLM_135M, hidden_size: undefined }, 'hidden_size'],
    ['a string size', { ...SMOLLM_135M, num_hidden_layers: '30' }, 'num_hidden_layers'],
    ['a fractional size', { ...SMOLLM_135M, vocab_size: 10.5 }, 'vocab_size'],
    ['yarn rope scaling', { ...SMOLLM_135M, rope_scaling: { rope_type: 'yarn', factor: 4 } }, 'rope_scaling.rope_type'],
    ['dynamic rope scaling', { ...SMOLLM_135M, rope_scaling: { type: 'dynamic', factor: 2 } }, 'rope_scaling.rope_type'],
    ['linear scaling without factor', { ...SMOLLM_135M, rope_scaling: { type: 'linear' } }, 'rope_scaling.factor'],
    ['partial rotary', { ...SMOLLM_135M, partial_rotary_factor: 0.5 }, 'partial_rotary_factor'],
    ['gelu', { ...SMOLLM_135M, hidden_act: 'gelu' }, 'hidden_act'],
    ['MLP biases', { ...SMOLLM_135M, mlp_bias: true }, 'mlp_bias'],
    ['quantization', { ...SMOLLM_135M, quantization_config: { quant_method: 'gptq' } }, 'quantization_config'],
    ['heads not divisible by kv heads', { ...SMOLLM_135M, num_key_value_heads: 2 }, 'nKvHeads'],
    ['an EOS id outside the vocabulary', { ...SMOLLM_135M, eos_token_id: 49152 }, 'eosTokenIds'],
    ['an unknown layer type', { ...QWEN3_0_6B, layer_types: ['full_attention', 'chunked_attention'] }, 'layer_types'],
  ])('rejects %s', (_what, json, field) => {
    expect(configError(() => modelConfigFromHf(json)).field).toBe(field);
  });

  it('caps Qwen2 at the window when use_sliding_window reaches a layer', () => {
    const sliding = { ...QWEN2_5_0_5B_INSTRUCT, use_sliding_window: true, sliding_window: 4096 };
    expect(modelConfigFromHf(sliding)).toMatchObject({ slidingWindow: 4096, maxPositionEmbeddings: 4096 });
    expect(modelConfigFromHf({ ...sliding, max_window_layers: 24 })).toMatchObject({ slidingWindow: null });
  });
});

describe('modelConfigToHf', () => {
  const all: [string, ModelConfig][] = [
    ...Object.entries(TEST_CONFIGS),
    ...[SMOLLM_135M, LLAMA_3_2_1B_INSTRUCT, QWEN2_5_0_5B_INSTRUCT, QWEN3_0_6B, MISTRAL_7B_V0_1].map(
      (json, i) => [`published ${i}`, modelConfigFromHf(json)] as [string, ModelConfig],
    ),
  ];
  it.each(all)('round-trips %s through config.json', (_name, config) => {
    expect(modelConfigFromHf(JSON.parse(JSON.stringify(modelConfigToHf(config))))).toEqual(config);
  });
});
