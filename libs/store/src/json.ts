// JSON text for stored values. JSON.stringify turns NaN and Infinity into null
// without a word; a stage read back on resume would then differ from the one
// computed, so such values are refused with the path of the first one. (-0
// still reads back as 0: equal under ===, and refusing it would refuse
// ordinary arithmetic results.)
import { InvalidInputError } from './errors';

class NonFiniteNumber extends Error {}

/** `value` as JSON text; throws InvalidInputError naming `field` plus the path of any NaN or infinite number. */
export function toJsonText(value: unknown, field: string, space?: number): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(
      value,
      (_key, item: unknown) => {
        if (typeof item === 'number' && !Number.isFinite(item)) throw new NonFiniteNumber();
        return item;
      },
      space,
    );
  } catch (error) {
    if (!(error instanceof NonFiniteNumber)) {
      throw new InvalidInputError(`${field} is not JSON: ${error instanceof Error ? error.message : String(error)}`, field, 'JSON', { cause: error });
    }
    const path = pathOfNonFinite(value, field) ?? field;
    throw new InvalidInputError(`${path} is not a finite number; JSON cannot hold NaN or Infinity (store null or a string)`, path, 'finite number');
  }
  return text ?? 'null';
}

function pathOfNonFinite(value: unknown, path: string): string | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? undefined : path;
  if (typeof value !== 'object' || value === null) return undefined;
  const json = (value as { toJSON?: unknown }).toJSON;
  if (typeof json === 'function') return pathOfNonFinite(json.call(value), path);
  if (Array.isArray(value)) {
    for (let index = 0; index < value.length; index++) {
      const found = pathOfNonFinite(value[index], `${path}[${index}]`);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  for (const [key, item] of Object.entries(value)) {
    const found = pathOfNonFinite(item, `${path}.${key}`);
    if (found !== undefined) return found;
  }
  return undefined;
}
