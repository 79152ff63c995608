// Task `objects`, in the spirit of OpenBookQA (an elementary "open book" fact
// combined with common knowledge, four options): every answer takes two hops,
// object -> material -> property, and the reasoning states both.
//   object form:   "Which object floats on water?"  options are objects;
//                  "Wood floats on water. A log is made of wood."
//   property form: "What is true about a spoon?"  options are properties;
//                  "A spoon is made of metal. Metal conducts electricity."
// A wrong solution makes one of the two hops false ("A rock is made of
// metal.", "Metal floats on water."). Distractors come only from materials
// that plainly lack the property (a glass bottle may float, so glass is never
// a distractor for floating), so each question has exactly one right option.
import type { Rng } from '../rng';
import { arrangeOptions, multipleChoiceProblem } from './multiple-choice';
import { capitalize, withArticle, type GeneratedProblem, type TaskGenerator } from './task';

/** A property that one material has, and the materials that clearly lack it. */
export interface MaterialProperty {
  /** The one material of the table that has it. */
  material: string;
  /** Verb phrase, third person singular: "conducts electricity". */
  phrase: string;
  /** Materials whose objects may serve as distractors. */
  lackedBy: readonly string[];
}

/** Objects of the table, by material. */
export const OBJECTS_BY_MATERIAL: Readonly<Record<string, readonly string[]>> = {
  metal: ['spoon', 'nail', 'coin', 'fork', 'key'],
  glass: ['window', 'glass jar', 'glass bottle'],
  wood: ['log', 'wooden block', 'stick', 'wooden spoon'],
  rubber: ['rubber band', 'rubber ball', 'rubber glove'],
  ice: ['ice cube', 'icicle'],
  paper: ['paper bag', 'napkin', 'paper cup'],
  wool: ['sweater', 'wool scarf', 'wool hat'],
  stone: ['rock', 'brick', 'pebble'],
};

/** Properties of the table, one per material. */
export const MATERIAL_PROPERTIES: readonly MaterialProperty[] = [
  { material: 'metal', phrase: 'conducts electricity', lackedBy: ['glass', 'wood', 'rubber', 'paper', 'wool', 'stone'] },
  { material: 'glass', phrase: 'lets light pass through', lackedBy: ['metal', 'wood', 'rubber', 'paper', 'wool', 'stone'] },
  { material: 'wood', phrase: 'floats on water', lackedBy: ['metal', 'stone'] },
  { material: 'rubber', phrase: 'stretches easily', lackedBy: ['metal', 'glass', 'wood', 'stone', 'ice', 'paper'] },
  { material: 'ice', phrase: 'melts when warm', lackedBy: ['metal', 'glass', 'wood', 'rubber', 'stone', 'paper', 'wool'] },
  { material: 'paper', phrase: 'tears easily', lackedBy: ['metal', 'glass', 'wood', 'stone', 'ice'] },
  { material: 'wool', phrase: 'keeps you warm', lackedBy: ['metal', 'glass', 'stone', 'ice'] },
];

/** The material of an object of the table. */
export function materialOf(object: string): string {
  for (const [material, objects] of Object.entries(OBJECTS_BY_MATERIAL)) if (objects.includes(object)) return material;
  throw new Error(`internal: "${object}" has no material`);
}

const madeOf = (object: string, material: string): string => `${capitalize(withArticle(object))} is made of ${material}.`;
const hasProperty = (material: string, phrase: string): string => `${capitalize(material)} ${phrase}.`;

function generate(rng: Rng): GeneratedProblem {
  const property = rng.pick(MATERIAL_PROPERTIES);
  return rng.next() < 0.5 ? objectForm(rng, property) : propertyForm(rng, property);
}

function objectForm(rng: Rng, property: MaterialProperty): GeneratedProblem {
  const right = rng.pick(OBJECTS_BY_MATERIAL[property.material]);
  const pool = property.lackedBy.flatMap((material) => OBJECTS_BY_MATERIAL[material]);
  const arranged = arrangeOptions(rng, right, rng.sample(pool, 3));
  return multipleChoiceProblem({
    question: `Which object ${property.phrase}?`,
    options: arranged.options.map(withArticle),
    correct: arranged.correct,
    // The false hop of a wrong conclusion: the chosen object is made of the material.
    reasoning: (chosen) => [hasProperty(property.material, property.phrase), madeOf(arranged.options[chosen], property.material)],
  });
}

function propertyForm(rng: Rng, property: MaterialProperty): GeneratedProblem {
  // Every material of the table lacks at least three of the other properties (a test checks it).
  const object = rng.pick(OBJECTS_BY_MATERIAL[property.material]);
  const lacked = MATERIAL_PROPERTIES.filter((other) => other.lackedBy.includes(property.material));
  const arranged = arrangeOptions(rng, property.phrase, rng.sample(lacked, 3).map((other) => other.phrase));
  return multipleChoiceProblem({
    question: `What is true about ${withArticle(object)}?`,
    options: arranged.options.map((phrase) => `it ${phrase}`),
    correct: arranged.correct,
    // The false hop of a wrong conclusion: the material has the chosen property.
    reasoning: (chosen) => [madeOf(object, property.material), hasProperty(property.material, arranged.options[chosen])],
  });
}

/** OpenBookQA-like two-hop object properties. */
export const objects: TaskGenerator = {
  name: 'objects',
  answerKind: 'letter',
  mirrors: 'OpenBookQA',
  description: 'which object has a property, or which property an object has, through its material; four options',
  generate,
};
