// The stages of a run, in order, from its resolved spec (names are stable:
// run-store keys, span names, report rows), and the resume plan: which
// stages an attempt restores from the run store and which it computes.
import { Method, type RunSpec } from '@cream/proto';

/** What a stage does. */
export type StageKind = 'data' | 'eval' | 'sft' | 'sample' | 'logprobs' | 'judge' | 'consistency' | 'train';

/** One planned stage. */
export interface PlannedStage {
  /** e.g. `iter-2/logprobs/m1`. */
  name: string;
  kind: StageKind;
  /** The iteration it belongs to (0 for data, SFT, and the evaluations of M0 and M1). */
  iteration: number;
  /** The model index k of M_k it evaluates, scores with, samples from or produces. */
  model?: number;
}

/** The log-prob versions iteration t needs on its responses: M_t, M_{t-1}, and M_{t-2} when t >= 2. */
export function logprobModels(t: number): number[] {
  return t >= 2 ? [t, t - 1, t - 2] : [t, t - 1];
}

/** Every stage of a run, in execution order. */
export function planStages(spec: Pick<RunSpec, 'iterations' | 'evaluate' | 'method'>): PlannedStage[] {
  const stages: PlannedStage[] = [{ name: 'data', kind: 'data', iteration: 0 }];
  const evaluation = (k: number, iteration: number) => {
    if (spec.evaluate) stages.push({ name: `eval/m${k}`, kind: 'eval', iteration, model: k });
  };
  evaluation(0, 0);
  stages.push({ name: 'sft', kind: 'sft', iteration: 0, model: 1 });
  evaluation(1, 0);
  for (let t = 1; t <= spec.iterations; t++) {
    stages.push({ name: `iter-${t}/sample`, kind: 'sample', iteration: t, model: t });
    for (const k of logprobModels(t)) stages.push({ name: `iter-${t}/logprobs/m${k}`, kind: 'logprobs', iteration: t, model: k });
    if (spec.method === Method.METHOD_SRLM) stages.push({ name: `iter-${t}/judge`, kind: 'judge', iteration: t, model: t });
    stages.push({ name: `iter-${t}/consistency`, kind: 'consistency', iteration: t });
    stages.push({ name: `iter-${t}/train`, kind: 'train', iteration: t, model: t + 1 });
    evaluation(t + 1, t);
  }
  return stages;
}

/** What an attempt does with one stage. */
export interface StageAction {
  stage: PlannedStage;
  /** `restore`: stored by an earlier attempt, read back; `run`: computed from scratch. */
  action: 'restore' | 'run';
}

/**
 * The resume plan: every stored stage is restored (never recomputed), every
 * other stage runs from scratch, in plan order. A stage that was running when
 * an attempt died left nothing in the store (stages commit atomically), so it
 * runs again.
 */
export function planAttempt(stages: readonly PlannedStage[], stored: ReadonlySet<string>): StageAction[] {
  return stages.map((stage) => ({ stage, action: stored.has(stage.name) ? 'restore' : 'run' }));
}
