/**
 * Where a JSON syntax error is, as a 1-based line and column. V8's messages give an offset
 * ("at position 48") for most errors and none for an unexpected token, so the offset is taken from
 * the message when it has one and otherwise found by scanning the text as JSON.parse does.
 */
export interface JsonSyntaxError {
  line: number;
  column: number;
  /** JSON.parse's message without the offset or the quoted source text, first letter lowercase. */
  message: string;
}

export function jsonSyntaxError(text: string, parseMessage: string): JsonSyntaxError {
  const stated = /\bat position (\d+)/.exec(parseMessage);
  const offset = stated ? Number(stated[1]) : firstErrorOffset(text);
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < Math.min(offset, text.length); i++) {
    if (text[i] === '\n') {
      line++;
      lineStart = i + 1;
    }
  }
  const message = parseMessage
    .replace(/ (?:in JSON )?at position \d+.*$/s, '') // "Unexpected number in JSON at position 6 (line 1 column 7)"
    .replace(/, (?:\.\.\.)?".*is not valid JSON$/s, '') // "Unexpected token 'x', "{"a": x}" is not valid JSON"
    .replace(/ \(line \d+ column \d+\)$/, '');
  return {
    line,
    column: offset - lineStart + 1,
    message: message.charAt(0).toLowerCase() + message.slice(1),
  };
}

/** The offset of the first character that makes `text` invalid JSON (its length if it ends early). */
export function firstErrorOffset(text: string): number {
  let i = 0;
  const fail = (): never => {
    throw new JsonStop(i);
  };
  const space = (): void => {
    while (text[i] === ' ' || text[i] === '\t' || text[i] === '\n' || text[i] === '\r') i++;
  };
  const digits = (): void => {
    if (!isDigit(text[i])) fail();
    while (isDigit(text[i])) i++;
  };
  const string = (): void => {
    i++; // the opening quote
    for (;;) {
      const c = text[i];
      if (c === undefined || c < ' ') fail();
      i++;
      if (c === '"') return;
      if (c !== '\\') continue;
      const e = text[i];
      if (e === 'u') {
        i++;
        for (let k = 0; k < 4; k++, i++) if (!/^[0-9a-fA-F]$/.test(text[i] ?? '')) fail();
      } else if (e !== undefined && '"\\/bfnrt'.includes(e)) i++;
      else fail();
    }
  };
  const value = (): void => {
    space();
    const c = text[i];
    if (c === '{') {
      i++;
      space();
      if (text[i] === '}') {
        i++;
        return;
      }
      for (;;) {
        space();
        if (text[i] !== '"') fail();
        string();
        space();
        if (text[i] !== ':') fail();
        i++;
        value();
        space();
        if (text[i] === '}') {
          i++;
          return;
        }
        if (text[i] !== ',') fail();
        i++;
      }
    }
    if (c === '[') {
      i++;
      space();
      if (text[i] === ']') {
        i++;
        return;
      }
      for (;;) {
        value();
        space();
        if (text[i] === ']') {
          i++;
          return;
        }
        if (text[i] !== ',') fail();
        i++;
      }
    }
    if (c === '"') {
      string();
      return;
    }
    if (c === '-' || isDigit(c)) {
      if (text[i] === '-') i++;
      if (text[i] === '0') i++;
      else digits();
      if (text[i] === '.') {
        i++;
        digits();
      }
      if (text[i] === 'e' || text[i] === 'E') {
        i++;
        if (text[i] === '+' || text[i] === '-') i++;
        digits();
      }
      return;
    }
    for (const word of ['true', 'false', 'null']) {
      if (c !== word[0]) continue;
      for (const ch of word) {
        if (text[i] !== ch) fail();
        i++;
      }
      return;
    }
    fail();
  };
  try {
    value();
    space();
    return Math.min(i, text.length);
  } catch (e) {
    if (e instanceof JsonStop) return e.offset;
    return text.length; // nested too deeply to scan: point at the end
  }
}

class JsonStop {
  constructor(readonly offset: number) {}
}

const isDigit = (c: string | undefined): boolean => c !== undefined && c >= '0' && c <= '9';
