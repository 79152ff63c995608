// The Self-Rewarding LM judge (Yuan et al. 2024, "Self-Rewarding Language
// Models", figure 2): the additive 5-point rubric prompt that asks the model
// to judge a response, and the parser of its "Score: <n>" verdict. This is the
// reward of the SRLM baseline (CREAM.md, "Baselines"); a judgment without a
// parsable score is reported as unparsed, never guessed. Two styles: 'full',
// the paper's text (about 1K tokens of a 7B model's tokenizer), and 'compact',
// the same five additive criteria in a few short lines, for small models with
// short contexts (the shipped M0 has 256 tokens).

/** How the rubric prompt is worded: the paper's text, or its criteria in a few short lines. */
export type RubricStyle = 'full' | 'compact';

/** Every rubric style. */
export const RUBRIC_STYLES: readonly RubricStyle[] = Object.freeze(['full', 'compact']);

/** The rubric prompt for one (question, response) pair, as the judge model's user turn ('full' by default). */
export function rubricPrompt(question: string, response: string, style: RubricStyle = 'full'): string {
  return style === 'compact' ? compactRubricPrompt(question, response) : fullRubricPrompt(question, response);
}

// The paper's prompt (Yuan et al. 2024, figure 2), unchanged.
function fullRubricPrompt(question: string, response: string): string {
  return [
    "Review the user's question and the corresponding response using the additive 5-point scoring system described below. " +
      'Points are accumulated based on the satisfaction of each criterion:',
    "- Add 1 point if the response is relevant and provides some information related to the user's inquiry, even if it is incomplete or contains some irrelevant content.",
    "- Add another point if the response addresses a substantial portion of the user's question, but does not completely resolve the query or provide a direct answer.",
    "- Award a third point if the response answers the basic elements of the user's question in a useful way, regardless of whether it seems to have been written by an AI Assistant or if it has elements typically found in blogs or search results.",
    "- Grant a fourth point if the response is clearly written from an AI Assistant's perspective, addressing the user's question directly and comprehensively, and is well-organized and helpful, even if there is slight room for improvement in clarity, conciseness or focus.",
    "- Bestow a fifth point for a response that is impeccably tailored to the user's question by an AI Assistant, without extraneous information, reflecting expert knowledge, and demonstrating a high-quality, engaging, and insightful answer.",
    '',
    `User: ${question}`,
    `<response>${response}</response>`,
    '',
    "After examining the user's instruction and the response:",
    '- Briefly justify your total score, up to 100 words.',
    '- Conclude with the score using the format: "Score: <total points>"',
    'Remember to assess from the AI Assistant perspective, utilizing web search knowledge as necessary. ' +
      "To evaluate the response in alignment with this additive scoring model, we'll systematically attribute points based on the outlined criteria.",
  ].join('\n');
}

// The paper's five additive criteria (relevant; addresses a substantial part;
// answers the basic elements usefully; clear and direct; nothing extraneous)
// and its verdict format, in three short lines around the question and the
// response: about 90 tokens of M0's 768-token BPE, so the judge's prompt for
// the longest built-in test item with its solution takes 212 of M0's 256
// positions (the full text alone takes about 970).
function compactRubricPrompt(question: string, response: string): string {
  return [
    'Add 1 point each if the response: is on topic; answers most of it; answers it well; is clear; has nothing extra.',
    `Question: ${question}`,
    `Response: ${response}`,
    'Give a reason, then Score: n.',
  ].join('\n');
}

/** Lowest and highest score of the additive rubric. */
export const RUBRIC_MIN_SCORE = 0;
/** Highest score of the additive rubric. */
export const RUBRIC_MAX_SCORE = 5;

// "Score: 4", "score:4", "Score: 4/5", "Score: 4 points", "**Score:** 4". The
// LAST verdict counts: judges often quote the format ("Score: <total points>")
// before giving theirs. A number with a fraction ("4.5") or out of range is
// not a rubric score.
const verdict = /score\s*:?\**\s*:?\s*(-?\d+(?:\.\d+)?)(\s*\/\s*5)?/gi;

/** The judge's score 0..5, or undefined when the text has no parsable in-range integer verdict. */
export function parseRubricScore(judgment: string): number | undefined {
  let last: RegExpExecArray | undefined;
  for (const match of judgment.matchAll(verdict)) last = match;
  if (!last) return undefined;
  const text = last[1];
  if (!/^\d+$/.test(text)) return undefined;
  const score = Number(text);
  return score >= RUBRIC_MIN_SCORE && score <= RUBRIC_MAX_SCORE ? score : undefined;
}

/** Several judgments of one response: the parsed scores, their mean (undefined when none parsed) and the counts. */
export function aggregateJudgments(judgments: readonly string[]): { scores: Array<number | undefined>; mean: number | undefined; numParsed: number; numUnparsed: number } {
  const scores = judgments.map(parseRubricScore);
  const parsed = scores.filter((s): s is number => s !== undefined);
  return {
    scores,
    mean: parsed.length === 0 ? undefined : parsed.reduce((a, b) => a + b, 0) / parsed.length,
    numParsed: parsed.length,
    numUnparsed: scores.length - parsed.length,
  };
}
