// An independent float64 implementation of the published Hugging Face math of
// LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM and Qwen3ForCausalLM
// (transformers' modeling_llama.py, modeling_qwen2.py, modeling_qwen3.py and
// modeling_rope_utils.py), in plain TypeScript loops over Float64Arrays: one
// sequence at a time, no batching, no cache, no tfjs. Tests compare the
// TensorFlow.js decoder against it; it is written from the HF code, not from
// ours, so that a shared mistake is unlikely.

import type { ModelConfig } from '../config';

/** Weights by HF tensor name, row-major in HF's shapes ([out, in] for Linear). */
export type ReferenceWeights = ReadonlyMap<string, Float64Array>;

/** One decoder layer's weights by role. */
export interface ReferenceLayer {
  inputNorm: Float64Array;
  qProj: Float64Array;
  kProj: Float64Array;
  vProj: Float64Array;
  oProj: Float64Array;
  qBias?: Float64Array;
  kBias?: Float64Array;
  vBias?: Float64Array;
  oBias?: Float64Array;
  qNorm?: Float64Array;
  kNorm?: Float64Array;
  postAttentionNorm: Float64Array;
  gateProj: Float64Array;
  upProj: Float64Array;
  downProj: Float64Array;
}

/** Layer `i` of `weights`, by the HF names of modeling_llama.py's LlamaDecoderLayer. */
export function referenceLayer(weights: ReferenceWeights, i: number): ReferenceLayer {
  const get = (suffix: string) => {
    const value = weights.get(`model.layers.${i}.${suffix}`);
    if (value === undefined) throw new Error(`reference: missing model.layers.${i}.${suffix}`);
    return value;
  };
  const maybe = (suffix: string) => weights.get(`model.layers.${i}.${suffix}`);
  return {
    inputNorm: get('input_layernorm.weight'),
    qProj: get('self_attn.q_proj.weight'),
    kProj: get('self_attn.k_proj.weight'),
    vProj: get('self_attn.v_proj.weight'),
    oProj: get('self_attn.o_proj.weight'),
    qBias: maybe('self_attn.q_proj.bias'),
    kBias: maybe('self_attn.k_proj.bias'),
    vBias: maybe('self_attn.v_proj.bias'),
    oBias: maybe('self_attn.o_proj.bias'),
    qNorm: maybe('self_attn.q_norm.weight'),
    kNorm: maybe('self_attn.k_norm.weight'),
    postAttentionNorm: get('post_attention_layernorm.weight'),
    gateProj: get('mlp.gate_proj.weight'),
    upProj: get('mlp.up_proj.weight'),
    downProj: get('mlp.down_proj.weight'),
  };
}

/** LlamaRMSNorm: weight * x / sqrt(mean(x^2) + eps). */
export function referenceRmsNorm(x: Float64Array, weight: Float64Array, eps: number): Float64Array {
  let sumSquares = 0;
  for (const value of x) sumSquares += value * value;
  const inverse = 1 / Math.sqrt(sumSquares / x.length + eps);
  return x.map((value, i) => weight[i] * (value * inverse));
}

/** nn.Linear: y = W x + b with W [out, in] row-major. */
export function referenceLinear(x: Float64Array, weight: Float64Array, bias?: Float64Array): Float64Array {
  const inFeatures = x.length;
  const outFeatures = weight.length / inFeatures;
  const y = new Float64Array(outFeatures);
  for (let o = 0; o < outFeatures; o++) {
    let sum = bias === undefined ? 0 : bias[o];
    for (let i = 0; i < inFeatures; i++) sum += weight[o * inFeatures + i] * x[i];
    y[o] = sum;
  }
  return y;
}

/** modeling_rope_utils: inv_freq = 1 / base^(arange(0, dim, 2) / dim), then the rope_type's change. */
export function referenceInverseFrequencies(config: ModelConfig): Float64Array {
  const dim = config.headDim;
  const invFreq = new Float64Array(dim / 2);
  for (let j = 0; j < dim; j += 2) invFreq[j / 2] = 1 / config.ropeTheta ** (j / dim);
  const scaling = config.ropeScaling;
  if (scaling === null) return invFreq;
  if (scaling.type === 'linear') return invFreq.map((f) => f / scaling.factor);
  // _compute_llama3_parameters, written as there: where(), then the medium-band blend.
  const oldContextLen = scaling.originalMaxPositionEmbeddings;
  const lowFreqWavelen = oldContextLen / scaling.lowFreqFactor;
  const highFreqWavelen = oldContextLen / scaling.highFreqFactor;
  return invFreq.map((f) => {
    const wavelen = (2 * Math.PI) / f;
    const invFreqLlama = wavelen > lowFreqWavelen ? f / scaling.factor : f;
    const smoothFactor = (oldContextLen / wavelen - scaling.lowFreqFactor) / (scaling.highFreqFactor - scaling.lowFreqFactor);
    const smoothed = ((1 - smoothFactor) * invFreqLlama) / scaling.factor + smoothFactor * invFreqLlama;
    const isMediumFreq = !(wavelen < highFreqWavelen) && !(wavelen > lowFreqWavelen);
    return isMediumFreq ? smoothed : invFreqLlama;
  });
}

/** apply_rotary_pos_emb for one head vector: x * cos + rotate_half(x) * sin, emb = cat(freqs, freqs). */
export function referenceRotary(x: Float64Array, position: number, invFreq: Float64Array): Float64Array {
  const half = x.length / 2;
  const freqs = Array.from(invFreq, (f) => position * f);
  const emb = [...freqs, ...freqs];
  const rotateHalf = [...Array.from(x.subarray(half), (v) => -v), ...x.subarray(0, half)];
  return x.map((value, i) => value * Math.cos(emb[i]) + rotateHalf[i] * Math.sin(emb[i]));
}

/**
 * LlamaAttention on one sequence `xs` (T rows of D, already normed) at `positions`:
 * causal, grouped-query (repeat_kv), scaled by head_dim^-0.5. Returns T rows of D.
 */
export function referenceAttention(
  config: ModelConfig,
  layer: ReferenceLayer,
  xs: readonly Float64Array[],
  positions: readonly number[],
): Float64Array[] {
  const { nHeads, nKvHeads, headDim, rmsNormEps } = config;
  const nRep = nHeads / nKvHeads;
  const invFreq = referenceInverseFrequencies(config);
  const heads = (flat: Float64Array, count: number, norm: Float64Array | undefined, position: number) =>
    Array.from({ length: count }, (_, h) => {
      let head: Float64Array = flat.slice(h * headDim, (h + 1) * headDim);
      if (norm !== undefined) head = referenceRmsNorm(head, norm, rmsNormEps);
      return referenceRotary(head, position, invFreq);
    });
  const queries = xs.map((x, t) => heads(referenceLinear(x, layer.qProj, layer.qBias), nHeads, layer.qNorm, positions[t]));
  const keys = xs.map((x, t) => heads(referenceLinear(x, layer.kProj, layer.kBias), nKvHeads, layer.kNorm, positions[t]));
  const values = xs.map((x) => {
    const v = referenceLinear(x, layer.vProj, layer.vBias);
    return Array.from({ length: nKvHeads }, (_, h) => v.slice(h * headDim, (h + 1) * headDim));
  });
  const scaling = headDim ** -0.5;
  return xs.map((_, t) => {
    const attnOutput = new Float64Array(nHeads * headDim);
    for (let h = 0; h < nHeads; h++) {
      const kvHead = Math.floor(h / nRep); // repeat_kv
      const scores = new Float64Array(t + 1);
      for (let s = 0; s <= t; s++) {
        let dot = 0;
        for (let d = 0; d < headDim; d++) dot += queries[t][h][d] * keys[s][kvHead][d];
        scores[s] = dot * scaling;
      }
      const weights = softmax(scores);
      for (let s = 0; s <= t; s++) {
        for (let d = 0; d < headDim; d++) attnOutput[h * headDim + d] += weights[s] * values[s][kvHead][d];
      }
    }
    return referenceLinear(attnOutput, layer.oProj, layer.oBias);
  });
}

/** LlamaMLP: down_proj(silu(gate_proj(x)) * up_proj(x)). */
export function referenceMlp(layer: ReferenceLayer, x: Float64Array): Float64Array {
  const gate = referenceLinear(x, layer.gateProj);
  const up = referenceLinear(x, layer.upProj);
  const hidden = gate.map((g, i) => (g / (1 + Math.exp(-g))) * up[i]);
  return referenceLinear(hidden, layer.downProj);
}

/** LlamaDecoderLayer: residual + self_attn(input_layernorm(x)), then residual + mlp(post_attention_layernorm(h)). */
export function referenceDecoderLayer(
  config: ModelConfig,
  layer: ReferenceLayer,
  xs: readonly Float64Array[],
  positions: readonly number[],
): Float64Array[] {
  const normed = xs.map((x) => referenceRmsNorm(x, layer.inputNorm, config.rmsNormEps));
  const attended = referenceAttention(config, layer, normed, positions);
  const hs = xs.map((x, t) => x.map((v, i) => v + attended[t][i]));
  return hs.map((h) => {
    const out = referenceMlp(layer, referenceRmsNorm(h, layer.postAttentionNorm, config.rmsNormEps));
    return h.map((v, i) => v + out[i]);
  });
}

/** LlamaModel: embed_tokens, the layers, norm; T rows of D for one sequence at positions 0..T-1. */
export function referenceHiddenStates(config: ModelConfig, weights: ReferenceWeights, ids: readonly number[]): Float64Array[] {
  const D = config.hiddenSize;
  const embed = required(weights, 'model.embed_tokens.weight');
  let xs: Float64Array[] = ids.map((id) => embed.slice(id * D, (id + 1) * D));
  const positions = ids.map((_, t) => t);
  for (let i = 0; i < config.nLayers; i++) xs = referenceDecoderLayer(config, referenceLayer(weights, i), xs, positions);
  return xs.map((x) => referenceRmsNorm(x, required(weights, 'model.norm.weight'), config.rmsNormEps));
}

/** LlamaForCausalLM: lm_head (the embedding when tied) of the hidden states; T rows of V. */
export function referenceLogits(config: ModelConfig, weights: ReferenceWeights, ids: readonly number[]): Float64Array[] {
  const head = config.tieWordEmbeddings ? required(weights, 'model.embed_tokens.weight') : required(weights, 'lm_head.weight');
  return referenceHiddenStates(config, weights, ids).map((h) => referenceLinear(h, head));
}

/** log softmax of one row. */
export function referenceLogSoftmax(logits: Float64Array): Float64Array {
  const max = Math.max(...logits);
  let sum = 0;
  for (const value of logits) sum += Math.exp(value - max);
  const logZ = max + Math.log(sum);
  return logits.map((value) => value - logZ);
}

/** log p(response[j] | prompt, response[<j]) for each response token. */
export function referenceResponseLogProbs(
  config: ModelConfig,
  weights: ReferenceWeights,
  promptIds: readonly number[],
  responseIds: readonly number[],
): number[] {
  const ids = [...promptIds, ...responseIds];
  const logits = referenceLogits(config, weights, ids);
  return responseIds.map((token, j) => referenceLogSoftmax(logits[promptIds.length - 1 + j])[token]);
}

/** Greedy decoding: append the argmax (lowest id on ties) until EOS or maxNewTokens. */
export function referenceGreedy(
  config: ModelConfig,
  weights: ReferenceWeights,
  promptIds: readonly number[],
  maxNewTokens: number,
): number[] {
  const ids = [...promptIds];
  const generated: number[] = [];
  while (generated.length < maxNewTokens && ids.length < config.maxPositionEmbeddings) {
    const logits = referenceLogits(config, weights, ids);
    const last = logits[logits.length - 1];
    let best = 0;
    for (let v = 1; v < last.length; v++) if (last[v] > last[best]) best = v;
    ids.push(best);
    generated.push(best);
    if (config.eosTokenIds.includes(best)) break;
  }
  return generated;
}

function softmax(scores: Float64Array): Float64Array {
  const max = Math.max(...scores);
  const exps = scores.map((s) => Math.exp(s - max));
  const sum = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / sum);
}

function required(weights: ReferenceWeights, name: string): Float64Array {
  const value = weights.get(name);
  if (value === undefined) throw new Error(`reference: missing ${name}`);
  return value;
}
