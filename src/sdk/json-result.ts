/*
 * How memoize stores a result as JSON. The Python SDK stores a tuple as {"$tuple": [...]} (so that
 * a hit gives back a tuple, not a list); JavaScript has no tuples, so it reads one as an array. An
 * object whose only key is `$tuple` would read back as an array, so it is not stored.
 */

const TUPLE = '$tuple';

/** An object whose only key is `$tuple`: a stored tuple if its value is an array. */
const onlyTupleKey = (v: unknown): v is { [TUPLE]: unknown } =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length === 1 && TUPLE in v;

const isTupleMark = (v: unknown): v is { [TUPLE]: unknown[] } => onlyTupleKey(v) && Array.isArray(v[TUPLE]);

/** A memoized result as JSON text; throws for a value that would not read back the same. */
export function jsonResult(value: unknown): string {
  const text = JSON.stringify(value);
  if (text === undefined) throw new Error('the result is not JSON-serialisable (undefined)');
  // Looked for only when the text could hold one: a result without the word costs nothing more.
  if (text.includes(`"${TUPLE}"`))
    JSON.parse(text, (_key, v: unknown) => {
      if (onlyTupleKey(v)) throw new Error(`an object whose only key is ${TUPLE} would come back an array`);
      return v;
    });
  return text;
}

/** The value of a memoized JSON result, tuples stored by the Python SDK as arrays. */
export function readJsonResult(text: string): unknown {
  if (!text.includes(`"${TUPLE}"`)) return JSON.parse(text);
  return JSON.parse(text, (_key, v: unknown) => (isTupleMark(v) ? v[TUPLE] : v));
}
