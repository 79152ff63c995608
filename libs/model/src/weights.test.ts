// Weight names and shapes per architecture, the deterministic init, and the
// checks of createWeights.
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it, onTestFinished } from 'vitest';
import { ModelWeightsError, createModelConfig, createWeights, disposeWeights, initWeights, modelConfigFromHf, weightShapes } from './index';
import { QWEN2_5_0_5B_INSTRUCT, QWEN3_0_6B, SMOLLM_135M, TEST_CONFIGS } from './testing';

describe('weightShapes', () => {
  it('lists SmolLM-135M: 9 tensors a layer, tied (no lm_head), HF [out, in] shapes', () => {
    const shapes = weightShapes(modelConfigFromHf(SMOLLM_135M));
    expect(shapes.size).toBe(1 + 30 * 9 + 1);
    expect(shapes.get('model.embed_tokens.weight')).toEqual([49152, 576]);
    expect(shapes.get('model.layers.0.self_attn.q_proj.weight')).toEqual([576, 576]);
    expect(shapes.get('model.layers.29.self_attn.k_proj.weight')).toEqual([192, 576]);
    expect(shapes.get('model.layers.0.mlp.down_proj.weight')).toEqual([576, 1536]);
    expect(shapes.has('lm_head.weight')).toBe(false);
    // the number of parameters of SmolLM-135M
    expect([...shapes.values()].reduce((sum, s) => sum + s.reduce((a, b) => a * b, 1), 0)).toBe(134515008);
  });

  it('adds q/k/v biases for Qwen2 and q/k norms for Qwen3', () => {
    const qwen2 = weightShapes(modelConfigFromHf(QWEN2_5_0_5B_INSTRUCT));
    expect(qwen2.get('model.layers.0.self_attn.k_proj.bias')).toEqual([128]);
    expect(qwen2.has('model.layers.0.self_attn.o_proj.bias')).toBe(false);
    const qwen3 = weightShapes(modelConfigFromHf(QWEN3_0_6B));
    expect(qwen3.get('model.layers.0.self_attn.q_norm.weight')).toEqual([128]);
    expect(qwen3.get('model.layers.0.self_attn.q_proj.weight')).toEqual([2048, 1024]);
    expect(qwen3.get('model.layers.0.self_attn.o_proj.weight')).toEqual([1024, 2048]);
  });
});

describe('initWeights', () => {
  it('is deterministic per (seed, tensor name) and independent of the other tensors', () => {
    const config = TEST_CONFIGS.llama;
    const a = initWeights(config, 11, { scope: 'a' });
    const b = initWeights(config, 11, { scope: 'b' });
    const c = initWeights(config, 12, { scope: 'c' });
    const deeper = initWeights({ ...config, nLayers: 3 }, 11, { scope: 'd' });
    onTestFinished(() => [a, b, c, deeper].forEach(disposeWeights));
    const name = 'model.layers.1.self_attn.q_proj.weight';
    expect(a.get(name)?.dataSync()).toEqual(b.get(name)?.dataSync());
    expect(a.get(name)?.dataSync()).not.toEqual(c.get(name)?.dataSync());
    expect(deeper.get(name)?.dataSync()).toEqual(a.get(name)?.dataSync());
  });

  it("follows HF's init: normal(0, 0.02) matrices, unit norms, zero biases; trainable variables named by HF name", () => {
    const config = createModelConfig({ architecture: 'qwen2', vocabSize: 300, hiddenSize: 64, nLayers: 1, nHeads: 4, intermediateSize: 96 });
    const weights = initWeights(config, 1);
    onTestFinished(() => disposeWeights(weights));
    const embedding = weights.get('model.embed_tokens.weight')?.dataSync() as Float32Array;
    const std = Math.sqrt(embedding.reduce((s, v) => s + v * v, 0) / embedding.length);
    expect(Math.abs(std - 0.02)).toBeLessThan(0.001);
    expect([...(weights.get('model.norm.weight')?.dataSync() ?? [])].every((v) => v === 1)).toBe(true);
    expect([...(weights.get('model.layers.0.self_attn.q_proj.bias')?.dataSync() ?? [])].every((v) => v === 0)).toBe(true);
    const variable = weights.get('model.layers.0.mlp.up_proj.weight');
    expect(variable).toBeInstanceOf(tf.Variable);
    expect(variable?.name).toBe('model.layers.0.mlp.up_proj.weight');
    expect(variable?.trainable).toBe(true);
  });

  it('refuses a second live model with the same variable names unless scoped', () => {
    const config = TEST_CONFIGS.llama;
    const first = initWeights(config, 1);
    onTestFinished(() => disposeWeights(first));
    expect(() => initWeights(config, 2)).toThrow(ModelWeightsError);
    const scoped = initWeights(config, 2, { scope: 'reference', trainable: false });
    expect(scoped.get('model.norm.weight')?.name).toBe('reference/model.norm.weight');
    expect(scoped.get('model.norm.weight')?.trainable).toBe(false);
    disposeWeights(scoped);
    const numTensors = tf.memory().numTensors;
    expect(() => initWeights(config, 2)).toThrow(ModelWeightsError);
    expect(tf.memory().numTensors).toBe(numTensors); // the partial set was freed
  });
});

describe('createWeights', () => {
  const config = TEST_CONFIGS.qwen3;
  const tensorsFor = () => {
    const tensors = new Map([...weightShapes(config)].map(([name, shape]) => [name, tf.zeros(shape)]));
    onTestFinished(() => tensors.forEach((t) => t.dispose()));
    return tensors;
  };
  const error = (run: () => unknown) => {
    try {
      run();
    } catch (caught) {
      return caught as ModelWeightsError;
    }
    throw new Error('expected a ModelWeightsError');
  };

  it("makes variables from loaded tensors, which stay the caller's", () => {
    const tensors = tensorsFor();
    const weights = createWeights(config, tensors);
    disposeWeights(weights);
    expect(tensors.get('model.norm.weight')?.isDisposed).toBe(false);
  });

  it('names a missing tensor, a wrong shape, a wrong dtype and an unexpected tensor', () => {
    const tensors = tensorsFor();
    const missing = new Map(tensors);
    missing.delete('model.layers.1.self_attn.k_norm.weight');
    expect(error(() => createWeights(config, missing))).toMatchObject({
      name: 'ModelWeightsError',
      tensorName: 'model.layers.1.self_attn.k_norm.weight',
      expectedShape: [8],
    });
    const wrongShape = tf.zeros([8, 20]);
    const wrongDtype = tf.zeros([20], 'int32');
    const extra = tf.zeros([2]);
    onTestFinished(() => tf.dispose([wrongShape, wrongDtype, extra]));
    expect(error(() => createWeights(config, new Map(tensors).set('model.layers.0.self_attn.q_proj.weight', wrongShape)))).toMatchObject({
      expectedShape: [32, 20],
      actualShape: [8, 20],
    });
    expect(error(() => createWeights(config, new Map(tensors).set('model.norm.weight', wrongDtype))).message).toMatch(/int32/);
    const withExtra = new Map(tensors).set('lm_head.weight', extra);
    expect(error(() => createWeights(config, withExtra)).tensorName).toBe('lm_head.weight');
    disposeWeights(createWeights(config, withExtra, { ignoreUnexpected: true }));
  });
});
