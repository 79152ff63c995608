// The stage plan of a run and the resume plan of an attempt.
import { Method } from '@cream/proto';
import { describe, expect, it } from 'vitest';
import { logprobModels, planAttempt, planStages } from './plan';

describe('planStages', () => {
  it('orders every stage of a CREAM run with evaluation', () => {
    const names = planStages({ iterations: 2, evaluate: true, method: Method.METHOD_CREAM }).map((s) => s.name);
    expect(names).toEqual([
      'data',
      'eval/m0',
      'sft',
      'eval/m1',
      'iter-1/sample',
      'iter-1/logprobs/m1',
      'iter-1/logprobs/m0',
      'iter-1/consistency',
      'iter-1/train',
      'eval/m2',
      'iter-2/sample',
      'iter-2/logprobs/m2',
      'iter-2/logprobs/m1',
      'iter-2/logprobs/m0',
      'iter-2/consistency',
      'iter-2/train',
      'eval/m3',
    ]);
  });

  it('adds the rubric judging for srlm only, and drops evaluations when not evaluating', () => {
    const srlm = planStages({ iterations: 1, evaluate: false, method: Method.METHOD_SRLM });
    expect(srlm.map((s) => s.name)).toEqual(['data', 'sft', 'iter-1/sample', 'iter-1/logprobs/m1', 'iter-1/logprobs/m0', 'iter-1/judge', 'iter-1/consistency', 'iter-1/train']);
    expect(srlm.find((s) => s.name === 'iter-1/train')).toMatchObject({ kind: 'train', iteration: 1, model: 2 });
  });

  it('asks each iteration for M_t, M_{t-1} and (from t = 2) M_{t-2}', () => {
    expect(logprobModels(1)).toEqual([1, 0]);
    expect(logprobModels(3)).toEqual([3, 2, 1]);
  });
});

describe('planAttempt', () => {
  const stages = planStages({ iterations: 1, evaluate: true, method: Method.METHOD_CREAM });

  it('restores every stored stage and runs the rest, in plan order', () => {
    const plan = planAttempt(stages, new Set(['data', 'eval/m0', 'sft', 'eval/m1']));
    expect(plan.map((p) => `${p.action} ${p.stage.name}`)).toEqual([
      'restore data',
      'restore eval/m0',
      'restore sft',
      'restore eval/m1',
      'run iter-1/sample',
      'run iter-1/logprobs/m1',
      'run iter-1/logprobs/m0',
      'run iter-1/consistency',
      'run iter-1/train',
      'run eval/m2',
    ]);
  });

  it('runs everything for a new run and nothing for a finished one', () => {
    expect(planAttempt(stages, new Set()).every((p) => p.action === 'run')).toBe(true);
    expect(planAttempt(stages, new Set(stages.map((s) => s.name))).every((p) => p.action === 'restore')).toBe(true);
  });
});
