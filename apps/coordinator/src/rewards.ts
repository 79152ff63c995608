// Pure assembly of an iteration's rewards and pairs (CREAM.md steps 2 to 6):
// the score sets the consistency scorer compares, the per-method scores
// pairs are built from (DPO rewards, rubric means, the task checker), and
// the DPO examples with their weights. Everything is keyed by prompt id and
// sample index, never by position across prompts.
import { compareScoreSets, dpoImplicitReward, lengthNormalizedLogLikelihood, type PreferencePair, type PromptScores } from '@cream/cream';
import { isCorrect } from '@cream/tasks';
import type { PromptItem } from './data';

/** One sampled response of an iteration. */
export interface SampleRecord {
  /** `<promptId>#<sampleIndex>`: the id it is scored and judged under. */
  id: string;
  promptId: string;
  index: number;
  text: string;
  numTokens: number;
  finishReason: string;
  /** Sum of its token log-probs under the sampling model, as the generator reported. */
  logprobSum: number;
  sequenceSeed: number;
}

/** One response's log-probability under one version (judge ScoreLogProbs). */
export interface LogprobRecord {
  id: string;
  sum: number;
  mean: number;
  numTokens: number;
}

/** One prompt's scores, mutable (the proto PromptScores and @cream/cream's both accept it). */
export interface ScoreList {
  promptId: string;
  scores: number[];
  missingIndices: number[];
}

/** The id of sample `index` of a prompt. */
export function sampleId(promptId: string, index: number): string {
  return `${promptId}#${index}`;
}

/** Samples grouped by prompt, in prompt order, each list in sample-index order (numSamples long). */
export function groupSamples(prompts: readonly PromptItem[], samples: readonly SampleRecord[], numSamples: number): Map<string, SampleRecord[]> {
  const byId = new Map(samples.map((sample) => [sample.id, sample]));
  const groups = new Map<string, SampleRecord[]>();
  for (const prompt of prompts) {
    const list: SampleRecord[] = [];
    for (let i = 0; i < numSamples; i++) {
      const sample = byId.get(sampleId(prompt.id, i));
      if (sample === undefined) throw new Error(`sample ${i} of prompt "${prompt.id}" is missing from the sample stage`);
      list.push(sample);
    }
    groups.set(prompt.id, list);
  }
  return groups;
}

/** Whether a response can be scored (the judge rejects an empty response). */
export function isScorable(sample: SampleRecord): boolean {
  return sample.text.length > 0;
}

/** Scores per prompt from a function of each sample; undefined marks the index missing. */
export function scoreSet(groups: ReadonlyMap<string, readonly SampleRecord[]>, score: (sample: SampleRecord) => number | undefined): ScoreList[] {
  return [...groups].map(([promptId, samples]) => {
    const scores: number[] = [];
    const missingIndices: number[] = [];
    samples.forEach((sample, i) => {
      const value = score(sample);
      if (value === undefined || !Number.isFinite(value)) {
        missingIndices.push(i);
        scores.push(0);
      } else scores.push(value);
    });
    return { promptId, scores, missingIndices };
  });
}

/**
 * The rewards of iteration t (steps 2 and 3): current r_t = logp_{M_t} -
 * logp_{M_{t-1}} (summed over response tokens); previous, for t = 1, M0's
 * mean log-prob per token, and for t >= 2, r_{t-1} = logp_{M_{t-1}} -
 * logp_{M_{t-2}}. `logprobs.get(k)` holds M_k's log-probs of this
 * iteration's responses by sample id; an unscored response is missing.
 */
export function dpoRewardSets(
  t: number,
  groups: ReadonlyMap<string, readonly SampleRecord[]>,
  logprobs: ReadonlyMap<number, ReadonlyMap<string, LogprobRecord>>,
): { current: ScoreList[]; previous: ScoreList[] } {
  const of = (k: number) => {
    const map = logprobs.get(k);
    if (map === undefined) throw new Error(`the log-probs of M${k} on iteration ${t}'s responses are missing`);
    return map;
  };
  const reward = (k: number) => (sample: SampleRecord) => {
    const now = of(k).get(sample.id);
    const before = of(k - 1).get(sample.id);
    return now === undefined || before === undefined ? undefined : dpoImplicitReward(now.sum, before.sum);
  };
  const current = scoreSet(groups, reward(t));
  const previous =
    t === 1
      ? scoreSet(groups, (sample) => {
          const m0 = of(0).get(sample.id);
          return m0 === undefined ? undefined : lengthNormalizedLogLikelihood(m0.sum, m0.numTokens);
        })
      : scoreSet(groups, reward(t - 1));
  return { current, previous };
}

/** SRLM scores: the mean parsed rubric score of each response (missing when none parsed). */
export function rubricScoreSet(groups: ReadonlyMap<string, readonly SampleRecord[]>, meanScores: ReadonlyMap<string, number | null>): ScoreList[] {
  return scoreSet(groups, (sample) => meanScores.get(sample.id) ?? undefined);
}

/** Oracle scores: 1 for a response the task checker accepts, 0 otherwise. */
export function oracleScoreSet(groups: ReadonlyMap<string, readonly SampleRecord[]>, prompts: readonly PromptItem[]): ScoreList[] {
  const items = new Map(prompts.map((prompt) => [prompt.id, prompt.item]));
  return scoreSet(groups, (sample) => {
    const item = items.get(sample.promptId);
    if (item === undefined) throw new Error(`prompt "${sample.promptId}" has no answer key; the oracle needs the built-in suite`);
    return isCorrect(item, sample.text) ? 1 : 0;
  });
}

/**
 * Pairs from one score set (step 5): chosen = argmax, rejected = argmin of
 * the present scores (first index on ties), none where every present score
 * is equal. Returns the pairs and the prompts that gave none.
 */
export function pairsFromScores(scores: readonly PromptScores[]): { pairs: PreferencePair[]; noPairPromptIds: string[] } {
  if (scores.length === 0) return { pairs: [], noPairPromptIds: [] };
  const result = compareScoreSets(scores, scores, { method: 'kendall', ranking: 'ordinal', rate: 'avg', mismatchPolicy: 'leave-out' });
  return { pairs: result.pairs, noPairPromptIds: result.noPairPromptIds };
}

/** A preference pair ready for the trainer. */
export interface TrainingPair {
  id: string;
  promptId: string;
  chosenIndex: number;
  rejectedIndex: number;
  chosen: string;
  rejected: string;
  /** The method's score margin, chosen minus rejected. */
  margin: number;
  /** This label's C: the consistency weight (cream) or 1 (the baselines). */
  weight: number;
}

/**
 * The DPO examples of an iteration: one per pair, with its weight (the pair's
 * own for cream, 1 for every other method). A pair whose two texts are equal
 * (the trainer refuses it) is dropped and counted.
 */
export function trainingPairs(
  pairs: readonly PreferencePair[],
  groups: ReadonlyMap<string, readonly SampleRecord[]>,
  useWeights: boolean,
): { pairs: TrainingPair[]; droppedIdentical: number } {
  const out: TrainingPair[] = [];
  let droppedIdentical = 0;
  for (const pair of pairs) {
    const samples = groups.get(pair.promptId);
    if (samples === undefined) throw new Error(`pair for unknown prompt "${pair.promptId}"`);
    const chosen = samples[pair.chosenIndex].text;
    const rejected = samples[pair.rejectedIndex].text;
    if (chosen === rejected) {
      droppedIdentical++;
      continue;
    }
    out.push({
      id: pair.promptId,
      promptId: pair.promptId,
      chosenIndex: pair.chosenIndex,
      rejectedIndex: pair.rejectedIndex,
      chosen,
      rejected,
      margin: pair.chosenScore - pair.rejectedScore,
      weight: useWeights ? pair.weight : 1,
    });
  }
  return { pairs: out, droppedIdentical };
}

/** Mean score margin of the pairs (0 without pairs). */
export function meanMargin(pairs: readonly TrainingPair[]): number {
  return pairs.length === 0 ? 0 : pairs.reduce((sum, pair) => sum + pair.margin, 0) / pairs.length;
}
