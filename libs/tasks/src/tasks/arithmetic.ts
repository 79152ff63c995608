// Task `arithmetic`, in the spirit of GSM8K (grade-school word problems whose
// solution is a few arithmetic steps, answered with an integer). A problem is
// a chain on one quantity, two or three computations long:
//   start:  "Sam has 7 apples."  or  "Sam has 3 bags with 4 apples in each bag." (3 * 4)
//   then one or two of: buys / finds / is given N more (+), gives away / loses N (-)
//   end:    "How many apples does Sam have now?"
//      or   "Sam shares the apples equally among 3 friends. How many apples does each friend get?" (/)
// Numbers stay small (every quantity from 2 to 99, divisions exact) and the
// reference solution writes one line per step, each with its equation, as
// GSM8K's solutions do, then `Answer: <n>`. A wrong solution slips by one or
// two in one step and carries the slip on; a badly formatted one ends with
// "So the answer is n.", GSM8K's "#### n", or the number in words.
import { answerLine } from '../prompt';
import type { Rng } from '../rng';
import type { GeneratedProblem, TaskGenerator } from './task';

/** The people of the task. */
export const ARITHMETIC_NAMES: readonly string[] = ['Sam', 'Alex', 'Mia', 'Tom', 'Lily', 'Ben', 'Emma', 'Jack'];
/** The things counted (plural nouns). */
export const ARITHMETIC_ITEMS: readonly string[] = ['apples', 'pens', 'cards', 'eggs', 'books', 'stickers', 'marbles', 'cookies'];

const MIN_VALUE = 2;
const MAX_VALUE = 99;
const NUMBER_WORDS = [
  'zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine', 'ten',
  'eleven', 'twelve', 'thirteen', 'fourteen', 'fifteen', 'sixteen', 'seventeen', 'eighteen', 'nineteen', 'twenty',
];

/** One computation of a chain: value `op` operand. */
interface Step {
  op: '+' | '-' | '*' | '/';
  operand: number;
  /** The solution line, given the value before and after the step. */
  explain(before: number, after: number): string;
}

/** A drawn chain: its question, its first value (or factor), and its computations. */
interface Chain {
  question: string;
  start: number;
  /** The line that states the start when it is not a computation. */
  startLine: string | undefined;
  steps: Step[];
}

function apply(op: Step['op'], value: number, operand: number): number {
  switch (op) {
    case '+':
      return value + operand;
    case '-':
      return value - operand;
    case '*':
      return value * operand;
    case '/':
      return Math.round(value / operand);
  }
}

/** The values after each step, from a start value, with an optional slip added after step `slipAt`. */
function run(chain: Chain, slip?: { at: number; by: number }): number[] {
  const values: number[] = [];
  let value = chain.start;
  chain.steps.forEach((step, index) => {
    value = apply(step.op, value, step.operand) + (slip?.at === index ? slip.by : 0);
    values.push(value);
  });
  return values;
}

function write(chain: Chain, values: readonly number[]): string[] {
  const lines = chain.startLine === undefined ? [] : [chain.startLine];
  chain.steps.forEach((step, index) => lines.push(step.explain(index === 0 ? chain.start : values[index - 1], values[index])));
  return lines;
}

function drawChain(rng: Rng): Chain | undefined {
  const name = rng.pick(ARITHMETIC_NAMES);
  const other = rng.pick(ARITHMETIC_NAMES.filter((candidate) => candidate !== name));
  const items = rng.pick(ARITHMETIC_ITEMS);
  const boxes = rng.next() < 0.5;
  const share = rng.next() < 0.5;
  const base = (boxes ? 1 : 0) + (share ? 1 : 0);
  const middle = rng.int(Math.max(1, 2 - base), 3 - base);

  const sentences: string[] = [];
  const steps: Step[] = [];
  let start: number;
  let startLine: string | undefined;
  let value: number;
  if (boxes) {
    const bags = rng.int(2, 5);
    const each = rng.int(2, 6);
    sentences.push(`${name} has ${bags} bags with ${each} ${items} in each bag.`);
    start = bags;
    steps.push({ op: '*', operand: each, explain: (before, after) => `${name} has ${before} * ${each} = ${after} ${items}.` });
    value = bags * each;
  } else {
    start = rng.int(4, 20);
    sentences.push(`${name} has ${start} ${items}.`);
    startLine = `${name} starts with ${start} ${items}.`;
    value = start;
  }
  for (let i = 0; i < middle; i++) {
    const add = value <= 4 || rng.next() < 0.5;
    const amount = add ? rng.int(2, 12) : rng.int(2, Math.min(12, value - MIN_VALUE));
    if (add) {
      sentences.push(rng.pick([`${name} buys ${amount} more ${items}.`, `${other} gives ${name} ${amount} more ${items}.`, `${name} finds ${amount} more ${items}.`]));
    } else {
      sentences.push(rng.pick([`${name} gives ${amount} ${items} to ${other}.`, `${name} loses ${amount} ${items}.`]));
    }
    const op = add ? '+' : '-';
    steps.push({ op, operand: amount, explain: (before, after) => `${name} now has ${before} ${op} ${amount} = ${after} ${items}.` });
    value = apply(op, value, amount);
  }
  if (share) {
    const divisors = [2, 3, 4, 5].filter((k) => value % k === 0 && value / k >= MIN_VALUE);
    if (divisors.length === 0) return undefined;
    const friends = rng.pick(divisors);
    sentences.push(`${name} shares the ${items} equally among ${friends} friends.`);
    sentences.push(`How many ${items} does each friend get?`);
    steps.push({ op: '/', operand: friends, explain: (before, after) => `Each friend gets ${before} / ${friends} = ${after} ${items}.` });
    value /= friends;
  } else {
    sentences.push(`How many ${items} does ${name} have now?`);
  }
  if (value > MAX_VALUE) return undefined;
  return { question: sentences.join(' '), start, startLine, steps };
}

function generate(rng: Rng): GeneratedProblem {
  let chain = drawChain(rng);
  // A draw with no exact division, or out of range, is drawn again (about one in four).
  while (chain === undefined) chain = drawChain(rng);
  const drawn = chain;
  const values = run(drawn);
  const answer = values[values.length - 1];
  return {
    question: drawn.question,
    answer: String(answer),
    solution: [...write(drawn, values), answerLine(String(answer))].join('\n'),
    wrongSolution: (rng) => {
      const by = rng.pick([-2, -1, 1, 2]);
      let slipped = run(drawn, { at: rng.int(0, drawn.steps.length - 1), by });
      // A slip before a rounding division can vanish; then slip in the last step.
      if (slipped[slipped.length - 1] === answer) slipped = run(drawn, { at: drawn.steps.length - 1, by });
      return [...write(drawn, slipped), answerLine(String(slipped[slipped.length - 1]))].join('\n');
    },
    badFormatSolution: (rng) => {
      const endings = [`So the answer is ${answer}.`, `#### ${answer}`];
      if (answer < NUMBER_WORDS.length) endings.push(`Answer: ${NUMBER_WORDS[answer]}`);
      return [...write(drawn, values), rng.pick(endings)].join('\n');
    },
  };
}

/** GSM8K-like multi-step arithmetic word problems. */
export const arithmetic: TaskGenerator = {
  name: 'arithmetic',
  answerKind: 'integer',
  mirrors: 'GSM8K',
  description: 'word problems of two or three steps (+, -, *, /) on small whole numbers; integer answers',
  generate,
};
