// The fused kernels of native/fused.h as tfjs kernels of the wasm backend,
// under cream's own kernel names (ops.ts runs them and registers their
// gradients). Like the native matmul, each reads its inputs at their wasm heap
// offsets and writes outputs the backend allocated, through HEAPF32 itself.
import * as tf from '@tensorflow/tfjs-core';

import { ComputeError } from './errors';
import type { NativeGemm } from './native';
import { heapOffset, heldAlone, packedWeight, replaceKernel, stockKernel, type WasmBackend } from './wasm-kernels';

/** Kernel names of the fused ops (one forward, and the pieces of its gradient). */
export const FusedKernel = {
  rmsNorm: 'CreamRmsNorm',
  rmsNormGradX: 'CreamRmsNormGradX',
  rmsNormGradWeight: 'CreamRmsNormGradWeight',
  swiglu: 'CreamSwiGlu',
  swigluGradGate: 'CreamSwiGluGradGate',
  swigluGradUp: 'CreamSwiGluGradUp',
  rotaryHeads: 'CreamRotaryHeads',
  rotaryHeadsGrad: 'CreamRotaryHeadsGrad',
  maskedSoftmax: 'CreamMaskedSoftmax',
  maskedSoftmaxGrad: 'CreamMaskedSoftmaxGrad',
  logSoftmaxGather: 'CreamLogSoftmaxGather',
  logSoftmaxGatherGrad: 'CreamLogSoftmaxGatherGrad',
  adamw: 'CreamAdamW',
  decodeAttention: 'CreamDecodeAttention',
  decodeLayer: 'CreamDecodeLayer',
  attention: 'CreamAttention',
  attentionGrad: 'CreamAttentionGrad',
  sumSquares: 'CreamSumSquares',
  qkvHeads: 'CreamQkvHeads',
  qkvHeadsGrad: 'CreamQkvHeadsGrad',
  qkvAttention: 'CreamQkvAttention',
  addRmsNorm: 'CreamAddRmsNorm',
  rmsNormGrad: 'CreamRmsNormGrad',
  qkvAttentionGrad: 'CreamQkvAttentionGrad',
  swigluMerged: 'CreamSwiGluMerged',
  swigluMergedGrad: 'CreamSwiGluMergedGrad',
} as const;

// Op codes of addon.cc's FusedCall.
const Op = {
  rmsNorm: 0,
  rmsNormGradX: 1,
  rmsNormGradW: 2,
  swiglu: 3,
  swigluGradGate: 4,
  swigluGradUp: 5,
  rotary: 6,
  softmax: 7,
  softmaxGrad: 8,
  logSoftmaxGather: 9,
  logSoftmaxGatherGrad: 10,
  adamw: 11,
  decodeAttention: 12,
  permuteChunks: 13,
  add: 14,
  attention: 15,
  attentionGrad: 16,
  sumSquares: 17,
  qkvHeads: 18,
  swigluMerged: 19,
  swigluMergedGrad: 20,
  addRmsNorm: 21,
  rmsNormGrad: 22,
  scatterAddRows: 23,
} as const;

const backendName = 'wasm';
let installed = false;
let enabled = true;
let installedNative: NativeGemm | undefined;

interface KernelArgs {
  inputs: Record<string, tf.TensorInfo | undefined>;
  backend: WasmBackend;
  attrs: Record<string, unknown>;
}

const size = (t: tf.TensorInfo) => tf.util.sizeFromShape(t.shape);
const last = (t: tf.TensorInfo) => t.shape[t.shape.length - 1];

function offsetOf(backend: WasmBackend, tensor: tf.TensorInfo, name: string): number {
  const offset = heapOffset(backend, tensor);
  if (offset === undefined) throw new ComputeError(`fused kernel: ${name} has no place in the wasm heap`);
  return offset;
}

/**
 * Allocates the outputs, then runs native op `code` with the numbers `args`
 * makes from the input and output heap offsets (-1 for an absent input).
 * Outputs of an empty problem are zero-filled without a native call.
 */
function launch(
  native: NativeGemm,
  backend: WasmBackend,
  code: number,
  inputs: Record<string, tf.TensorInfo | null>,
  outputs: Array<{ shape: number[]; dtype?: tf.DataType }>,
  args: (input: Record<string, number>, output: number[]) => number[],
): tf.TensorInfo[] {
  const made = outputs.map(({ shape, dtype }) => backend.makeOutput(shape, dtype ?? 'float32'));
  const empty = Object.values(inputs).some((t) => t !== null && size(t) === 0);
  if (empty || made.some((t) => size(t) === 0)) {
    for (const t of made) {
      if (size(t) > 0) backend.wasm.HEAPF32.fill(0, offsetOf(backend, t, 'output'), offsetOf(backend, t, 'output') + size(t));
    }
    return made;
  }
  const inputOffsets: Record<string, number> = {};
  for (const [name, t] of Object.entries(inputs)) inputOffsets[name] = t === null ? -1 : offsetOf(backend, t, name);
  const outputOffsets = made.map((t) => offsetOf(backend, t, 'output'));
  // Read the view after makeOutput: growing the wasm memory replaces HEAPF32.
  native.fused(code, backend.wasm.HEAPF32, args(inputOffsets, outputOffsets));
  return made;
}

/**
 * What a whole-sequence attention pass keeps for its gradient: nothing (no
 * gradient: scoring, prefill), the probabilities [B, Hq, T, S], or each
 * query's log-sum-exp [B, Hq, T] (the gradient computes the probabilities
 * again, so nothing [T, S] is kept between the passes).
 */
export type AttentionKeep = 'none' | 'probs' | 'lse';

function keptForGradient(attr: unknown): AttentionKeep {
  if (attr === 'none' || attr === 'probs' || attr === 'lse') return attr;
  throw new ComputeError(`attention: attribute keep must be "none", "probs" or "lse", got ${String(attr)}`);
}

function attentionOutputs(keep: AttentionKeep, B: number, Hq: number, T: number, S: number, Dh: number): Array<{ shape: number[] }> {
  const out = { shape: [B, T, Hq * Dh] };
  if (keep === 'none') return [out];
  return [out, { shape: keep === 'probs' ? [B, Hq, T, S] : [B, Hq, T] }];
}

// A gradient kernel's kept tensor (exactly one of probs and lse) and mask inputs.
function attentionGradInputs(a: KernelArgs): Record<'probs' | 'lse' | 'mask' | 'past' | 'starts', tf.TensorInfo | null> {
  const [probs, lse] = [a.inputs.probs ?? null, a.inputs.lse ?? null];
  if ((probs === null) === (lse === null)) throw new ComputeError('attention gradient: give exactly one of probs and lse');
  return { probs, lse, mask: a.inputs.mask ?? null, past: a.inputs.past ?? null, starts: a.inputs.starts ?? null };
}

function kernels(native: NativeGemm): Record<string, tf.KernelFunc> {
  const k = (body: (args: KernelArgs) => tf.TensorInfo | tf.TensorInfo[]): tf.KernelFunc =>
    (params) => body(params as unknown as KernelArgs);
  const input = (args: KernelArgs, name: string) => args.inputs[name] as tf.TensorInfo;
  return {
    [FusedKernel.rmsNorm]: k((a) => {
      const [x, weight] = [input(a, 'x'), input(a, 'weight')];
      const d = last(x);
      return launch(native, a.backend, Op.rmsNorm, { x, weight }, [{ shape: x.shape }], (i, o) => [i.x, i.weight, o[0], size(x) / d, d, Number(a.attrs.eps)])[0];
    }),
    [FusedKernel.rmsNormGradX]: k((a) => {
      const [x, weight, dy] = [input(a, 'x'), input(a, 'weight'), input(a, 'dy')];
      const d = last(x);
      return launch(native, a.backend, Op.rmsNormGradX, { x, weight, dy }, [{ shape: x.shape }], (i, o) => [i.x, i.weight, i.dy, o[0], size(x) / d, d, Number(a.attrs.eps)])[0];
    }),
    [FusedKernel.rmsNormGradWeight]: k((a) => {
      const [x, dy] = [input(a, 'x'), input(a, 'dy')];
      const d = last(x);
      return launch(native, a.backend, Op.rmsNormGradW, { x, dy }, [{ shape: [d] }], (i, o) => [i.x, i.dy, o[0], size(x) / d, d, Number(a.attrs.eps)])[0];
    }),
    [FusedKernel.addRmsNorm]: k((a) => {
      const [x, y, weight] = [input(a, 'x'), input(a, 'y'), input(a, 'weight')];
      const d = last(x);
      return launch(native, a.backend, Op.addRmsNorm, { x, y, weight }, [{ shape: x.shape }, { shape: x.shape }], (i, o) => [
        i.x, i.y, i.weight, o[0], o[1], size(x) / d, d, Number(a.attrs.eps),
      ]);
    }),
    [FusedKernel.rmsNormGrad]: k((a) => {
      const [x, weight, dy] = [input(a, 'x'), input(a, 'weight'), input(a, 'dy')];
      const addend = a.inputs.addend ?? null;
      const d = last(x);
      return launch(native, a.backend, Op.rmsNormGrad, { x, weight, dy, addend }, [{ shape: x.shape }, { shape: [d] }], (i, o) => [
        i.x, i.weight, i.dy, i.addend, o[0], o[1], size(x) / d, d, Number(a.attrs.eps),
      ]);
    }),
    [FusedKernel.swiglu]: k((a) => {
      const [gate, up] = [input(a, 'gate'), input(a, 'up')];
      return launch(native, a.backend, Op.swiglu, { gate, up }, [{ shape: gate.shape }], (i, o) => [i.gate, i.up, o[0], size(gate)])[0];
    }),
    [FusedKernel.swigluGradGate]: k((a) => {
      const [gate, up, dy] = [input(a, 'gate'), input(a, 'up'), input(a, 'dy')];
      return launch(native, a.backend, Op.swigluGradGate, { gate, up, dy }, [{ shape: gate.shape }], (i, o) => [i.gate, i.up, i.dy, o[0], size(gate)])[0];
    }),
    [FusedKernel.swigluGradUp]: k((a) => {
      const [gate, dy] = [input(a, 'gate'), input(a, 'dy')];
      return launch(native, a.backend, Op.swigluGradUp, { gate, dy }, [{ shape: gate.shape }], (i, o) => [i.gate, i.dy, o[0], size(gate)])[0];
    }),
    [FusedKernel.rotaryHeads]: k((a) => {
      const [x, cos, sin] = [input(a, 'x'), input(a, 'cos'), input(a, 'sin')];
      const [B, T, H, Dh] = x.shape;
      return launch(native, a.backend, Op.rotary, { x, cos, sin }, [{ shape: [B, H, T, Dh] }], (i, o) => [i.x, i.cos, i.sin, o[0], B, T, H, Dh, 0])[0];
    }),
    [FusedKernel.rotaryHeadsGrad]: k((a) => {
      const [dy, cos, sin] = [input(a, 'dy'), input(a, 'cos'), input(a, 'sin')];
      const [B, H, T, Dh] = dy.shape;
      return launch(native, a.backend, Op.rotary, { dy, cos, sin }, [{ shape: [B, T, H, Dh] }], (i, o) => [i.dy, i.cos, i.sin, o[0], B, T, H, Dh, 1])[0];
    }),
    [FusedKernel.maskedSoftmax]: k((a) => {
      const scores = input(a, 'scores');
      const mask = a.inputs.mask ?? null;
      const [B, H, T, S] = scores.shape;
      return launch(native, a.backend, Op.softmax, { scores, mask }, [{ shape: scores.shape }], (i, o) => [i.scores, i.mask, o[0], B, H, T, S, Number(a.attrs.scale)])[0];
    }),
    [FusedKernel.maskedSoftmaxGrad]: k((a) => {
      const [probs, dy] = [input(a, 'probs'), input(a, 'dy')];
      const S = last(probs);
      return launch(native, a.backend, Op.softmaxGrad, { probs, dy }, [{ shape: probs.shape }], (i, o) => [i.probs, i.dy, o[0], size(probs) / S, S, Number(a.attrs.scale)])[0];
    }),
    [FusedKernel.logSoftmaxGather]: k((a) => {
      const [logits, targets] = [input(a, 'logits'), input(a, 'targets')];
      const [N, V] = logits.shape;
      return launch(native, a.backend, Op.logSoftmaxGather, { logits, targets }, [{ shape: [N] }], (i, o) => [i.logits, i.targets, o[0], N, V])[0];
    }),
    [FusedKernel.logSoftmaxGatherGrad]: k((a) => {
      const [logits, targets, dy] = [input(a, 'logits'), input(a, 'targets'), input(a, 'dy')];
      const [N, V] = logits.shape;
      return launch(native, a.backend, Op.logSoftmaxGatherGrad, { logits, targets, dy }, [{ shape: logits.shape }], (i, o) => [i.logits, i.targets, i.dy, o[0], N, V])[0];
    }),
    [FusedKernel.decodeAttention]: k((a) => {
      const [q, keys, values] = [input(a, 'q'), input(a, 'keys'), input(a, 'values')];
      const mask = a.inputs.mask ?? null;
      const [B, Hq, , Dh] = q.shape;
      const [, Hkv, S] = keys.shape;
      return launch(native, a.backend, Op.decodeAttention, { q, keys, values, mask }, [{ shape: [B, 1, Hq * Dh] }], (i, o) => [
        i.q,
        i.keys,
        i.values,
        i.mask,
        o[0],
        B,
        Hq,
        Hkv,
        S,
        Dh,
        Number(a.attrs.scale),
      ])[0];
    }),
    [FusedKernel.decodeLayer]: k((a) => {
      const { backend } = a;
      const T = Number(a.attrs.tokens ?? 1); // tokens per sequence
      const x = input(a, 'x'); // [B*T, D]
      const D = x.shape[1];
      const B = x.shape[0] / T;
      const cos = input(a, 'cos'); // [L, Dh/2]
      const Dh = cos.shape[1] * 2;
      const Hq = Number(a.attrs.nHeads);
      // No cache tensors: a fresh cache of T slots, made here (every slot is written).
      const fresh = a.inputs.keys === undefined;
      const Hkv = fresh ? Number(a.attrs.nKvHeads) : input(a, 'keys').shape[1];
      const S = fresh ? T : input(a, 'keys').shape[2];
      const inter = input(a, 'w1').shape[0];
      for (const name of fresh ? [] : ['keys', 'values']) {
        if (!heldAlone(backend, input(a, name))) throw new ComputeError(`decode layer: the cache's ${name} share their memory; it is written in place`);
      }
      const out = backend.makeOutput([B * T, D], 'float32');
      const cacheOut = fresh ? [backend.makeOutput([B, Hkv, T, Dh], 'float32'), backend.makeOutput([B, Hkv, T, Dh], 'float32')] : [];
      const shapes: Record<string, [number, number]> = {
        wq: [Hq * Dh, D],
        wk: [Hkv * Dh, D],
        wv: [Hkv * Dh, D],
        wo: [D, Hq * Dh],
        w1: [inter, D],
        w3: [inter, D],
        w2: [D, inter],
      };
      // The packed copies (few-row products); with more tokens also the weights in place (the GEMM).
      const names = Object.keys(shapes);
      const packed = Object.entries(shapes).map(([name, [n, kk]]) => {
        const w = input(a, name);
        if (w.shape[0] !== n || w.shape[1] !== kk) throw new ComputeError(`decode layer: ${name} is [${w.shape}], expected [${n}, ${kk}]`);
        return packedWeight(native, backend, w, offsetOf(backend, w, name), n, kk);
      });
      // Read the view after makeOutput (and packing), which may grow the memory.
      const heap = backend.wasm.HEAPF32;
      const plain = (name: string) => {
        const offset = offsetOf(backend, input(a, name), name);
        return heap.subarray(offset, offset + size(input(a, name)));
      };
      const views = T === 1 ? packed : [...packed, ...names.map(plain)];
      const offsets = ['x', 'out', 'inputNorm', 'postNorm', 'cos', 'sin', 'keys', 'values'].map((name) => {
        if (name === 'out') return offsetOf(backend, out, 'out');
        if (fresh && (name === 'keys' || name === 'values')) return offsetOf(backend, cacheOut[name === 'keys' ? 0 : 1], name);
        return offsetOf(backend, input(a, name), name);
      });
      const slots = fresh ? new Int32Array(B) : Int32Array.from(a.attrs.slots as number[]);
      // The optional biases and q/k head norms, by offset (-1: none), in the addon's order.
      const extraSizes: Record<(typeof OPTIONAL_LAYER_WEIGHTS)[number], number> = { bq: Hq * Dh, bk: Hkv * Dh, bv: Hkv * Dh, bo: D, qNorm: Dh, kNorm: Dh };
      const extras = OPTIONAL_LAYER_WEIGHTS.map((name) => {
        const tensor = a.inputs[name];
        if (tensor === undefined) return -1;
        const length = extraSizes[name];
        if (tensor.shape.length !== 1 || tensor.shape[0] !== length) throw new ComputeError(`decode layer: ${name} is [${tensor.shape}], expected [${length}]`);
        return offsetOf(backend, tensor, name);
      });
      native.decodeLayer(heap, offsets, views, slots, [B, D, Hq, Hkv, Dh, inter, S, cos.shape[0], T], Number(a.attrs.eps), extras);
      return fresh ? [out, ...cacheOut] : out;
    }),
    [FusedKernel.attention]: k((a) => {
      const [q, keys, values] = [input(a, 'q'), input(a, 'keys'), input(a, 'values')];
      const mask = a.inputs.mask ?? null;
      const past = a.inputs.past ?? null; // int32 [B]: causal from each row's past, instead of a mask
      const starts = a.inputs.starts ?? null; // int32 [B, T], with past: each query's first key (packed segments)
      const [B, Hq, T, Dh] = q.shape;
      const [, Hkv, S] = keys.shape;
      const keep = keptForGradient(a.attrs.keep);
      const made = launch(native, a.backend, Op.attention, { q, keys, values, mask, past, starts }, attentionOutputs(keep, B, Hq, T, S, Dh), (i, o) => [
        i.q, i.keys, i.values, i.mask, o[0], keep === 'probs' ? o[1] : -1, B, Hq, Hkv, T, S, Dh, Number(a.attrs.scale), i.past, -1, -1, i.starts, keep === 'lse' ? o[1] : -1,
      ]);
      return keep === 'none' ? made[0] : made;
    }),
    // Attention read straight from the merged projection qkv [B, T, (Hq + 2 Hkv) Dh]:
    // no heads-first q, k and v are written (the native op's merged form).
    [FusedKernel.qkvAttention]: k((a) => {
      const [qkv, cos, sin] = [input(a, 'qkv'), input(a, 'cos'), input(a, 'sin')];
      const mask = a.inputs.mask ?? null;
      const past = a.inputs.past ?? null;
      const starts = a.inputs.starts ?? null;
      const [B, T] = qkv.shape;
      const [Hq, Hkv] = [Number(a.attrs.nHeads), Number(a.attrs.nKvHeads)];
      const Dh = last(qkv) / (Hq + 2 * Hkv);
      const keep = keptForGradient(a.attrs.keep);
      const made = launch(native, a.backend, Op.attention, { qkv, cos, sin, mask, past, starts }, attentionOutputs(keep, B, Hq, T, T, Dh), (i, o) => [
        i.qkv, i.qkv, i.qkv, i.mask, o[0], keep === 'probs' ? o[1] : -1, B, Hq, Hkv, T, T, Dh, Number(a.attrs.scale), i.past, i.cos, i.sin, i.starts, keep === 'lse' ? o[1] : -1,
      ]);
      return keep === 'none' ? made[0] : made;
    }),
    // The gradients read the forward pass's inputs and what it kept: the
    // probabilities, or each query's log-sum-exp with the mask (a bias, or
    // past and starts), from which they compute the probabilities again.
    [FusedKernel.qkvAttentionGrad]: k((a) => {
      const [dy, qkv, cos, sin] = [input(a, 'dy'), input(a, 'qkv'), input(a, 'cos'), input(a, 'sin')];
      const { probs, lse, mask, past, starts } = attentionGradInputs(a);
      const [B, Hq, T] = (probs ?? lse!).shape;
      const Hkv = (last(qkv) / (last(dy) / Hq) - Hq) / 2;
      const Dh = last(dy) / Hq;
      return launch(native, a.backend, Op.attentionGrad, { dy, qkv, probs, lse, cos, sin, mask, past, starts }, [{ shape: qkv.shape }], (i, o) => [
        i.dy, i.qkv, i.qkv, i.qkv, i.probs, o[0], o[0], o[0], B, Hq, Hkv, T, T, Dh, Number(a.attrs.scale), i.cos, i.sin, i.mask, i.past, i.starts, i.lse,
      ])[0];
    }),
    [FusedKernel.attentionGrad]: k((a) => {
      const [dy, q, keys, values] = [input(a, 'dy'), input(a, 'q'), input(a, 'keys'), input(a, 'values')];
      const { probs, lse, mask, past, starts } = attentionGradInputs(a);
      const [B, Hq, T, Dh] = q.shape;
      const [, Hkv, S] = keys.shape;
      return launch(native, a.backend, Op.attentionGrad, { dy, q, keys, values, probs, lse, mask, past, starts }, [{ shape: q.shape }, { shape: keys.shape }, { shape: values.shape }], (i, o) => [
        i.dy, i.q, i.keys, i.values, i.probs, o[0], o[1], o[2], B, Hq, Hkv, T, S, Dh, Number(a.attrs.scale), -1, -1, i.mask, i.past, i.starts, i.lse,
      ]);
    }),
    [FusedKernel.qkvHeads]: k((a) => {
      const [qkv, cos, sin] = [input(a, 'qkv'), input(a, 'cos'), input(a, 'sin')];
      const [B, T] = qkv.shape;
      const [Hq, Hkv] = [Number(a.attrs.nHeads), Number(a.attrs.nKvHeads)];
      const Dh = last(qkv) / (Hq + 2 * Hkv);
      const outputs = [{ shape: [B, Hq, T, Dh] }, { shape: [B, Hkv, T, Dh] }, { shape: [B, Hkv, T, Dh] }];
      return launch(native, a.backend, Op.qkvHeads, { qkv, cos, sin }, outputs, (i, o) => [i.qkv, o[0], o[1], o[2], i.cos, i.sin, B, T, Hq, Hkv, Dh, 0]);
    }),
    [FusedKernel.qkvHeadsGrad]: k((a) => {
      const [dq, dk, dv, cos, sin] = [input(a, 'dq'), input(a, 'dk'), input(a, 'dv'), input(a, 'cos'), input(a, 'sin')];
      const [B, Hq, T, Dh] = dq.shape;
      const Hkv = dk.shape[1];
      return launch(native, a.backend, Op.qkvHeads, { dq, dk, dv, cos, sin }, [{ shape: [B, T, (Hq + 2 * Hkv) * Dh] }], (i, o) => [
        o[0], i.dq, i.dk, i.dv, i.cos, i.sin, B, T, Hq, Hkv, Dh, 1,
      ])[0];
    }),
    [FusedKernel.swigluMerged]: k((a) => {
      const gateUp = input(a, 'gateUp');
      const inter = last(gateUp) / 2;
      const rows = size(gateUp) / last(gateUp);
      return launch(native, a.backend, Op.swigluMerged, { gateUp }, [{ shape: [...gateUp.shape.slice(0, -1), inter] }], (i, o) => [i.gateUp, o[0], rows, inter])[0];
    }),
    [FusedKernel.swigluMergedGrad]: k((a) => {
      const [gateUp, dy] = [input(a, 'gateUp'), input(a, 'dy')];
      const inter = last(gateUp) / 2;
      const rows = size(gateUp) / last(gateUp);
      return launch(native, a.backend, Op.swigluMergedGrad, { gateUp, dy }, [{ shape: gateUp.shape }], (i, o) => [i.gateUp, i.dy, o[0], rows, inter])[0];
    }),
    [FusedKernel.sumSquares]: k((a) => {
      const x = input(a, 'x');
      return launch(native, a.backend, Op.sumSquares, { x }, [{ shape: [] }], (i, o) => [i.x, o[0], size(x)])[0];
    }),
    [FusedKernel.adamw]: k((a) => {
      const [p, m, v, g] = [input(a, 'p'), input(a, 'm'), input(a, 'v'), input(a, 'g')];
      const at = a.attrs as Record<string, number>;
      return launch(native, a.backend, Op.adamw, { p, m, v, g }, [{ shape: p.shape }, { shape: p.shape }, { shape: p.shape }], (i, o) => [
        i.p,
        i.m,
        i.v,
        i.g,
        ...o,
        size(p),
        at.beta1,
        at.beta2,
        at.epsilon,
        at.decayFactor,
        at.stepSize,
        at.biasCorrection2Sqrt,
        at.gradientScale ?? 1,
      ]);
    }),
  };
}

/** Registers the fused kernels for the wasm backend on the native addon (idempotent; replaces an earlier registration). */
export function registerFusedKernels(native: NativeGemm): void {
  for (const [kernelName, kernelFunc] of Object.entries(kernels(native))) {
    if (tf.getKernel(kernelName, backendName)) tf.unregisterKernel(kernelName, backendName);
    tf.registerKernel({ kernelName, backendName, kernelFunc });
  }
  installed = true;
  installedNative = native;
}

/**
 * Registers the wasm backend's Transpose (when the last axis stays last: the
 * moves of heads and tokens, rank <= 4, rows of at least 8 values; a second
 * reference to the input when only axes of size 1 move), Add
 * (float32 of equal shapes: residuals, summed gradients) and ScatterNd (a
 * float32 scatter-add of rows along the first axis: a gather's gradient) as
 * native kernels on the thread pool; other cases keep the stock kernels.
 * Gradients are tfjs-core's, registered on the kernel names. Idempotent.
 */
export function useNativeTransposeAndAdd(native: NativeGemm): void {
  const [transposeStock, addStock] = [stockKernel(tf.Transpose), stockKernel(tf.Add)];
  const transpose: tf.KernelFunc = (params) => {
    const a = params as unknown as KernelArgs;
    const x = a.inputs.x as tf.TensorInfo;
    const perm = a.attrs.perm as number[];
    const rank = x.shape.length;
    const chunk = x.shape[rank - 1];
    const outShape = perm.map((p) => x.shape[p]);
    // Only axes of size 1 move: the values keep their order, so the result is a
    // second reference to x's memory, as Reshape makes.
    const moved = perm.filter((p) => x.shape[p] !== 1);
    if (x.dtype !== 'string' && moved.every((p, i) => i === 0 || moved[i - 1] < p)) {
      (a.backend as unknown as { incRef(dataId: tf.DataId): void }).incRef(x.dataId);
      return { dataId: x.dataId, shape: outShape, dtype: x.dtype };
    }
    if ((x.dtype !== 'float32' && x.dtype !== 'int32') || rank < 2 || rank > 4 || perm[rank - 1] !== rank - 1 || chunk < 8 || heapOffset(a.backend, x) === undefined) {
      return transposeStock.kernelFunc(params);
    }
    // The leading axes padded to three with axes of size 1 in front.
    const pad = 4 - rank;
    const dims = [...new Array<number>(pad).fill(1), ...x.shape.slice(0, -1)];
    const order = [...Array.from({ length: pad }, (_, i) => i), ...perm.slice(0, -1).map((p) => p + pad)];
    return launch(native, a.backend, Op.permuteChunks, { x }, [{ shape: outShape, dtype: x.dtype }], (i, o) => [i.x, o[0], dims[0], dims[1], dims[2], chunk, order[0], order[1], order[2]])[0];
  };
  const add: tf.KernelFunc = (params) => {
    const a = params as unknown as KernelArgs;
    const [x, y] = [a.inputs.a as tf.TensorInfo, a.inputs.b as tf.TensorInfo];
    if (x.dtype !== 'float32' || y.dtype !== 'float32' || !tf.util.arraysEqual(x.shape, y.shape) || size(x) < 1024 ||
      heapOffset(a.backend, x) === undefined || heapOffset(a.backend, y) === undefined) {
      return addStock.kernelFunc(params);
    }
    return launch(native, a.backend, Op.add, { x, y }, [{ shape: x.shape }], (i, o) => [i.x, i.y, o[0], size(x)])[0];
  };
  // A scatter-add of rows along the first axis (indices [M, 1], the form a
  // gather's gradient takes): one native pass per part of the output rows,
  // where the stock kernel walks every value generically (0.88 ms for
  // [2048, 256] into [512, 256]). An index outside the rows throws.
  const scatterStock = stockKernel(tf.ScatterNd);
  const scatterNd: tf.KernelFunc = (params) => {
    const a = params as unknown as KernelArgs;
    const [indices, updates] = [a.inputs.indices as tf.TensorInfo, a.inputs.updates as tf.TensorInfo];
    const shape = a.attrs.shape as number[];
    const rows = shape[0];
    const width = tf.util.sizeFromShape(shape.slice(1));
    const m = indices.shape[0];
    if (indices.dtype !== 'int32' || updates.dtype !== 'float32' || indices.shape.length !== 2 || indices.shape[1] !== 1 ||
      shape.length < 1 || size(updates) !== m * width || m === 0 || width === 0 ||
      heapOffset(a.backend, indices) === undefined || heapOffset(a.backend, updates) === undefined) {
      return scatterStock.kernelFunc(params);
    }
    return launch(native, a.backend, Op.scatterAddRows, { indices, updates }, [{ shape }], (i, o) => [i.indices, i.updates, o[0], m, rows, width])[0];
  };
  replaceKernel(tf.Transpose, transpose);
  replaceKernel(tf.Add, add);
  replaceKernel(tf.ScatterNd, scatterNd);
}

/**
 * Turns the fused kernels off (the ops then compose plain tfjs ops on every
 * backend) or back on, e.g. to compare both in one benchmark run.
 */
export function useFusedKernels(on: boolean): void {
  enabled = on;
}

// The decoder layer's optional weights, in the order the addon's decodeLayer takes their offsets.
const OPTIONAL_LAYER_WEIGHTS = ['bq', 'bk', 'bv', 'bo', 'qNorm', 'kNorm'] as const;

/** Weights of one decoder layer, HF [out, in] layout, as the model holds them; the biases and q/k norms when it has them. */
export interface DecodeLayerWeights {
  readonly inputNorm: tf.Tensor; // [D]
  readonly postAttentionNorm: tf.Tensor; // [D]
  readonly wq: tf.Tensor; // [Hq*Dh, D]
  readonly wk: tf.Tensor; // [Hkv*Dh, D]
  readonly wv: tf.Tensor; // [Hkv*Dh, D]
  readonly wo: tf.Tensor; // [D, Hq*Dh]
  readonly w1: tf.Tensor; // [I, D]
  readonly w3: tf.Tensor; // [I, D]
  readonly w2: tf.Tensor; // [D, I]
  readonly bq?: tf.Tensor; // [Hq*Dh]
  readonly bk?: tf.Tensor; // [Hkv*Dh]
  readonly bv?: tf.Tensor; // [Hkv*Dh]
  readonly bo?: tf.Tensor; // [D]
  readonly qNorm?: tf.Tensor; // [Dh]: RMSNorm of each query head before the rotation (Qwen3)
  readonly kNorm?: tf.Tensor; // [Dh]
}

function layerInputs(x: tf.Tensor2D, w: DecodeLayerWeights, tables: { cos: tf.Tensor2D; sin: tf.Tensor2D }): tf.NamedTensorMap {
  return {
    x,
    inputNorm: w.inputNorm,
    postNorm: w.postAttentionNorm,
    cos: tables.cos,
    sin: tables.sin,
    wq: w.wq,
    wk: w.wk,
    wv: w.wv,
    wo: w.wo,
    w1: w.w1,
    w3: w.w3,
    w2: w.w2,
    ...Object.fromEntries(OPTIONAL_LAYER_WEIGHTS.filter((name) => w[name] !== undefined).map((name) => [name, w[name] as tf.Tensor])),
  };
}

/**
 * One Llama-family decoder layer (with the q/k/v and o biases and the q/k head
 * norms of Qwen2 and Qwen3 when `w` has them) for `tokens` tokens per
 * sequence (1: a decoding step; more: prefill, a scoring chunk), as one native
 * kernel: x [B*T, D] (sequence-major) -> out [B*T, D]. Token t of sequence b
 * sits at slot and rotary position slots[b] + t (rows of the tables cos / sin
 * [L, Dh/2]) and attends slots 0..slots[b] + t (causal). With a cache, its
 * keys and values are written IN PLACE into it (which must hold slots[b] + T
 * slots and be its memory's only owner); without one (null: nothing cached
 * yet, every slot 0), new cache tensors [B, nKvHeads, T, Dh] are returned.
 * Products read packed copies of the weights (made on first use) up to 512
 * rows. Only while fusedKernelsActive() and not under a gradient tape; the
 * model otherwise runs its separate ops.
 */
export function prefillLayer(
  x: tf.Tensor2D,
  w: DecodeLayerWeights,
  tables: { cos: tf.Tensor2D; sin: tf.Tensor2D },
  cache: { keys: tf.Tensor4D; values: tf.Tensor4D } | null,
  slots: readonly number[],
  options: { nHeads: number; nKvHeads: number; eps: number; tokens: number },
): { out: tf.Tensor2D; keys?: tf.Tensor4D; values?: tf.Tensor4D } {
  if (!fusedKernelsActive()) throw new ComputeError('prefillLayer needs the fused kernels (wasm+native)');
  const inputs = cache === null ? layerInputs(x, w, tables) : { ...layerInputs(x, w, tables), keys: cache.keys, values: cache.values };
  const attrs = { slots: [...slots], eps: options.eps, nHeads: options.nHeads, nKvHeads: options.nKvHeads, tokens: options.tokens };
  const result = tf.engine().runKernel(FusedKernel.decodeLayer, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor | tf.Tensor[];
  if (!Array.isArray(result)) return { out: result as tf.Tensor2D };
  const [out, keys, values] = result;
  return { out: out as tf.Tensor2D, keys: keys as tf.Tensor4D, values: values as tf.Tensor4D };
}

/**
 * sum(x^2) over every value of `tensors` as one vector, read where they lie
 * in the wasm heap by one native call (no kernel per tensor, no read back of
 * a tensor), or undefined when the fused kernels are not active or a tensor
 * is not float32 in the heap.
 */
export function nativeSumOfSquares(tensors: readonly tf.Tensor[]): number | undefined {
  if (!fusedKernelsActive() || installedNative === undefined) return undefined;
  const backend = tf.backend() as unknown as WasmBackend;
  const offsets: number[] = [];
  const sizes: number[] = [];
  for (const t of tensors) {
    const offset = t.dtype === 'float32' && !t.isDisposed ? heapOffset(backend, t) : undefined;
    if (offset === undefined) return undefined;
    offsets.push(offset);
    sizes.push(t.size);
  }
  return installedNative.sumSquaresList(backend.wasm.HEAPF32, offsets, sizes);
}

/** Whether the ops run the fused kernels: registered, enabled, and the wasm backend is the active one. */
export function fusedKernelsActive(): boolean {
  return installed && enabled && tf.getBackend() === backendName;
}
