// The compact rubric fits the shipped base model: with models/m0's tokenizer
// and chat template, the judge's prompt for every built-in test item with its
// solution leaves room for a judgment within M0's 256 positions (the paper's
// full rubric does not), and every EFT example of the seed set (prompt and
// verdict) fits whole, so SFT trains on it untruncated.
import { join } from 'node:path';
import { rubricPrompt } from '@cream/cream';
import { loadTokenizer, type HfTokenizer } from '@cream/model';
import { buildSuite, BUILTIN_SUITE_SEED } from '@cream/tasks';
import { beforeAll, describe, expect, it } from 'vitest';

const M0 = join(__dirname, '..', '..', '..', 'models', 'm0');
// M0's context (config.json max_position_embeddings) and the room a judgment needs:
// a justification line and "Score: n" (the EFT verdicts are 13 to 24 tokens, and EOS).
const CONTEXT = 256;
const JUDGMENT_ROOM = 40;

let tokenizer: HfTokenizer;
const promptTokens = (content: string): number =>
  tokenizer.encode(tokenizer.applyChatTemplate([{ role: 'user', content }], { addGenerationPrompt: true }), { addSpecialTokens: false }).length;

beforeAll(async () => {
  tokenizer = await loadTokenizer(M0);
});

describe('the compact rubric on the shipped M0', () => {
  const suite = buildSuite({ seed: BUILTIN_SUITE_SEED, sizes: { pretrainPerTask: 0 } });

  it('leaves room for a judgment on every built-in test item; the full rubric does not fit at all', () => {
    const items = Object.values(suite.test).flat();
    const compact = items.map((item) => promptTokens(rubricPrompt(item.prompt, item.solution, 'compact')));
    const full = items.map((item) => promptTokens(rubricPrompt(item.prompt, item.solution, 'full')));
    expect(Math.max(...compact)).toBeLessThanOrEqual(CONTEXT - JUDGMENT_ROOM);
    expect(Math.min(...full)).toBeGreaterThan(CONTEXT);
  });

  it('fits every EFT example of the seed set, prompt and verdict, in the context', () => {
    expect(suite.eft.length).toBe(3 * suite.seedSft.length);
    for (const example of suite.eft) {
      const rendered = tokenizer.applyChatTemplate(example.messages.map(({ role, content }) => ({ role, content })));
      expect(tokenizer.encode(rendered, { addSpecialTokens: false }).length, example.id).toBeLessThanOrEqual(CONTEXT);
    }
  });
});
