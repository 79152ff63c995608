// AdamW (Loshchilov & Hutter 2019, "Decoupled Weight Decay Regularization"),
// step for step as PyTorch's torch.optim.AdamW (single-tensor, no amsgrad):
//   p <- p * (1 - lr * weightDecay)                    decoupled decay, first
//   m <- beta1 * m + (1 - beta1) * g
//   v <- beta2 * v + (1 - beta2) * g^2
//   p <- p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// with t the parameter's own step count. Its state (m, v, t) is keyed by the
// weight's NAME (the Hugging Face tensor name of the weights map), never by
// position, so a state saved from one model object restores into another that
// lists its variables in any order.

import { adamwUpdate } from '@cream/compute';
import * as tf from '@tensorflow/tfjs-core';
import { InvalidOptionError } from '../errors';

/** Which weights get weight decay, by name and variable. */
export type WeightDecayFilter = (name: string, variable: tf.Variable) => boolean;

/**
 * The default decay filter: 2-D weight matrices only (projections, embeddings,
 * lm_head), never RMSNorm weights or biases, as the HF Trainer's
 * get_decay_parameter_names excludes norm and bias parameters.
 */
export const decayMatricesOnly: WeightDecayFilter = (_name, variable) => variable.rank === 2;

/** AdamW hyperparameters; defaults are PyTorch's and the HF Trainer's. */
export interface AdamWOptions {
  /** Decay rate of the first moment. Default 0.9. */
  readonly beta1?: number;
  /** Decay rate of the second moment. Default 0.999. */
  readonly beta2?: number;
  /** Added to the denominator. Default 1e-8. */
  readonly epsilon?: number;
  /** Decoupled weight decay, times the learning rate each step. Default 0.01 (the paper's). */
  readonly weightDecay?: number;
  /** Which weights decay. Default: decayMatricesOnly. */
  readonly decay?: WeightDecayFilter;
}

/** One weight's optimizer state as plain numbers: what a snapshot stores. */
export interface AdamWStateEntry {
  /** Updates this weight has received (PyTorch's per-parameter `step`). */
  readonly step: number;
  /** The weight's shape. */
  readonly shape: readonly number[];
  /** First moment, row-major. */
  readonly m: Float32Array;
  /** Second moment, row-major. */
  readonly v: Float32Array;
}

/** The whole optimizer state, keyed by weight name. */
export type AdamWState = Map<string, AdamWStateEntry>;

interface Moments {
  step: number;
  m: tf.Tensor;
  v: tf.Tensor;
}

/** AdamW over a map of named variables; the learning rate is given per update. */
export class AdamW {
  readonly beta1: number;
  readonly beta2: number;
  readonly epsilon: number;
  readonly weightDecay: number;
  private readonly decay: WeightDecayFilter;
  private readonly moments = new Map<string, Moments>();

  constructor(options: AdamWOptions = {}) {
    this.beta1 = options.beta1 ?? 0.9;
    this.beta2 = options.beta2 ?? 0.999;
    this.epsilon = options.epsilon ?? 1e-8;
    this.weightDecay = options.weightDecay ?? 0.01;
    this.decay = options.decay ?? decayMatricesOnly;
    for (const [option, value] of [
      ['adamBeta1', this.beta1],
      ['adamBeta2', this.beta2],
    ] as const) {
      if (!(value >= 0 && value < 1)) throw new InvalidOptionError(`${option} must be in [0, 1), got ${value}`, option);
    }
    if (!(this.epsilon > 0 && Number.isFinite(this.epsilon))) {
      throw new InvalidOptionError(`adamEpsilon must be a finite number > 0, got ${this.epsilon}`, 'adamEpsilon');
    }
    if (!(this.weightDecay >= 0 && Number.isFinite(this.weightDecay))) {
      throw new InvalidOptionError(`weightDecay must be a finite number >= 0, got ${this.weightDecay}`, 'weightDecay');
    }
  }

  /**
   * One update of every weight that has a gradient (a weight without one is
   * left alone and its step does not advance, as PyTorch skips grad None).
   * `gradients` is keyed by the same names as `weights`. Each gradient is
   * used as gradient * gradientScale (gradient clipping's factor, clipFactor):
   * the same numbers as scaling the gradients first, without the extra pass.
   */
  update(
    weights: ReadonlyMap<string, tf.Variable>,
    gradients: ReadonlyMap<string, tf.Tensor>,
    learningRate: number,
    gradientScale = 1,
  ): void {
    if (!(learningRate >= 0 && Number.isFinite(learningRate))) {
      throw new InvalidOptionError(`learningRate must be a finite number >= 0, got ${learningRate}`, 'learningRate');
    }
    if (!(gradientScale >= 0 && Number.isFinite(gradientScale))) {
      throw new InvalidOptionError(`gradientScale must be a finite number >= 0, got ${gradientScale}`, 'gradientScale');
    }
    for (const [name, gradient] of gradients) {
      const variable = weights.get(name);
      if (variable === undefined) throw new InvalidOptionError(`a gradient for ${name}, which is not a weight`, 'gradients');
      if (!tf.util.arraysEqual(gradient.shape, variable.shape)) {
        throw new InvalidOptionError(`gradient of ${name} has shape [${gradient.shape}], the weight [${variable.shape}]`, 'gradients');
      }
      const previous = this.moments.get(name);
      if (previous !== undefined && !tf.util.arraysEqual(previous.m.shape, variable.shape)) {
        throw new InvalidOptionError(`optimizer state of ${name} has shape [${previous.m.shape}], the weight [${variable.shape}]`, 'weights');
      }
      const step = (previous?.step ?? 0) + 1;
      const decay = this.decay(name, variable) ? this.weightDecay : 0;
      // One fused kernel on wasm+native (plain tf ops elsewhere); the zero
      // moments of a first step are temporaries.
      const { m, v } = tf.tidy(() => {
        const zeros = previous === undefined ? tf.zerosLike(variable) : undefined;
        const updated = adamwUpdate(variable, previous?.m ?? (zeros as tf.Tensor), previous?.v ?? (zeros as tf.Tensor), gradient, {
          learningRate,
          beta1: this.beta1,
          beta2: this.beta2,
          epsilon: this.epsilon,
          weightDecay: decay,
          step,
          gradientScale,
        });
        variable.assign(updated.p);
        return { m: updated.m, v: updated.v };
      });
      previous?.m.dispose();
      previous?.v.dispose();
      this.moments.set(name, { step, m, v });
    }
  }

  /** Names of the weights that have state, in insertion order. */
  names(): string[] {
    return [...this.moments.keys()];
  }

  /** A copy of the state as plain arrays, keyed by weight name. */
  async exportState(): Promise<AdamWState> {
    const state: AdamWState = new Map();
    for (const [name, { step, m, v }] of this.moments) {
      const [mData, vData] = await Promise.all([m.data<'float32'>(), v.data<'float32'>()]);
      state.set(name, { step, shape: [...m.shape], m: Float32Array.from(mData), v: Float32Array.from(vData) });
    }
    return state;
  }

  /**
   * Replaces the state with `state` (from exportState, possibly of another
   * process). With `weights`, checks that every entry names a weight of that
   * shape, so a state cannot silently land on the wrong tensor.
   */
  loadState(state: ReadonlyMap<string, AdamWStateEntry>, weights?: ReadonlyMap<string, tf.Variable>): void {
    for (const [name, entry] of state) {
      const size = entry.shape.reduce((a, b) => a * b, 1);
      if (entry.m.length !== size || entry.v.length !== size || !(Number.isInteger(entry.step) && entry.step >= 0)) {
        throw new InvalidOptionError(`optimizer state of ${name} is malformed`, 'optimizerState');
      }
      if (weights !== undefined) {
        const variable = weights.get(name);
        if (variable === undefined) throw new InvalidOptionError(`optimizer state names ${name}, which is not a weight`, 'optimizerState');
        if (!tf.util.arraysEqual([...entry.shape], variable.shape)) {
          throw new InvalidOptionError(`optimizer state of ${name} has shape [${entry.shape}], the weight [${variable.shape}]`, 'optimizerState');
        }
      }
    }
    this.dispose();
    for (const [name, entry] of state) {
      this.moments.set(name, {
        step: entry.step,
        m: tf.tensor(entry.m, [...entry.shape], 'float32'),
        v: tf.tensor(entry.v, [...entry.shape], 'float32'),
      });
    }
  }

  /** Frees the moment tensors; the optimizer starts from zero state afterwards. */
  dispose(): void {
    for (const { m, v } of this.moments.values()) {
      m.dispose();
      v.dispose();
    }
    this.moments.clear();
  }
}
