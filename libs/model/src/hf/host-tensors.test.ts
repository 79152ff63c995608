// Host tensors to tfjs and back keep every bit, and a checkpoint's tensors become
// the model's variables through createWeights without leaking tensors.
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { createModelConfig } from '../config';
import { createWeights, disposeWeights, initWeights } from '../weights';
import { fromHostTensors, toHostTensors } from './host-tensors';
import type { TensorMap } from './safetensors';

describe('host tensors', () => {
  it('round-trip through tfjs bit for bit, -0, subnormals, infinities and NaN included', async () => {
    const corners = new Float32Array(8);
    new Uint32Array(corners.buffer).set([0x80000000, 0x00000001, 0x7f800000, 0xff800000, 0x7fc00000, 0x3f800000, 0x12345678, 0xbf000000]);
    const host: TensorMap = new Map([
      ['a', { shape: [2, 4], data: corners }],
      ['b', { shape: [], data: new Float32Array([0.1]) }],
    ]);
    const before = tf.memory().numTensors;
    const tensors = fromHostTensors(host);
    const back = await toHostTensors(tensors);
    for (const tensor of tensors.values()) tensor.dispose();
    expect(tf.memory().numTensors).toBe(before);
    expect([...back.keys()]).toEqual(['a', 'b']);
    expect(back.get('a')!.shape).toEqual([2, 4]);
    expect([...new Uint32Array(back.get('a')!.data.buffer)]).toEqual([...new Uint32Array(corners.buffer)]);
    expect(back.get('b')).toEqual({ shape: [], data: new Float32Array([0.1]) });
  });
  it('turn initialized weights into a checkpoint map and back into equal variables', async () => {
    const config = createModelConfig({ vocabSize: 40, hiddenSize: 8, nLayers: 1, nHeads: 2, intermediateSize: 12 });
    const before = tf.memory().numTensors;
    const weights = initWeights(config, 7, { scope: 'host-tensors-a' });
    const host = await toHostTensors(weights);
    const tensors = fromHostTensors(host);
    const again = createWeights(config, tensors, { scope: 'host-tensors-b' });
    for (const tensor of tensors.values()) tensor.dispose();
    for (const [name, variable] of weights) expect(await again.get(name)!.data()).toEqual(await variable.data());
    disposeWeights(weights);
    disposeWeights(again);
    expect(tf.memory().numTensors).toBe(before);
  });
  it('refuses a non-float32 tensor', async () => {
    const ints = tf.tensor([1, 2], [2], 'int32');
    await expect(toHostTensors(new Map([['i', ints]]))).rejects.toMatchObject({ name: 'ModelWeightsError', tensorName: 'i' });
    ints.dispose();
  });
});
