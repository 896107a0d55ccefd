/**
 * Reading a config file's text: YAML (1.2), or strict JSON for a `.json` file. A
 * syntax error is a problem at `file:line:column`, with a short reason.
 */
import YAML, { LineCounter } from 'yaml';
import type { ConfigProblem } from './problems.js';

/** A syntax error at a character offset of the text. */
interface SyntaxFault {
  readonly offset: number;
  readonly reason: string;
}

/** 1-based line and column of a character offset (columns count UTF-16 units, as editors mostly do). */
export function lineColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, column: Math.min(offset, text.length) - lineStart + 1 };
}

/** The YAML library's reasons, except where they speak of its own API. */
const YAML_REASONS: Readonly<Record<string, string>> = {
  MULTIPLE_DOCS: 'the file holds more than one YAML document (a second ---); a config file is one document',
};

/**
 * Parses a config file's text. Returns the data, or the syntax problems, each at
 * `file:line:column` (`display` is the file name as the user gave it).
 */
export function parseConfigText(text: string, display: string): { data: unknown } | { problems: ConfigProblem[] } {
  // A byte-order mark is not content (RFC 8259 §8.1 lets a parser ignore it).
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  const at = (offset: number) => {
    const { line, column } = lineColumn(body, offset);
    return `${display}:${line}:${column}`;
  };
  if (display.endsWith('.json')) {
    const fault = jsonFault(body);
    if (fault !== undefined) return { problems: [{ path: at(fault.offset), message: `JSON: ${fault.reason}` }] };
    return { data: JSON.parse(body) as unknown };
  }
  const lineCounter = new LineCounter();
  const doc = YAML.parseDocument(body, { uniqueKeys: true, prettyErrors: false, lineCounter });
  if (doc.errors.length > 0) {
    return {
      problems: doc.errors.map((e) => ({
        path: at(e.pos[0]),
        message: `YAML: ${YAML_REASONS[e.code] ?? e.message.split('\n')[0]}`,
      })),
    };
  }
  try {
    return { data: doc.toJS({ maxAliasCount: 100 }) as unknown };
  } catch (err) {
    // Aliases: an unknown anchor, or more expansions than maxAliasCount (a "billion laughs" file).
    return { problems: [{ path: display, message: `YAML: ${(err as Error).message.split('\n')[0]}` }] };
  }
}

/**
 * Where strict JSON text (RFC 8259) first goes wrong, or undefined when it is valid.
 * V8's own messages quote the text around the error (which may hold a passphrase) and
 * do not always give a position; this scan gives both, in few words. It also refuses
 * a key that appears twice in one object, which JSON.parse would let the last one win,
 * as the YAML reader refuses it.
 */
export function jsonFault(text: string): SyntaxFault | undefined {
  let i = 0;
  const fail = (reason: string, offset = i): never => {
    throw { offset, reason } satisfies SyntaxFault;
  };
  const found = (): string => (i >= text.length ? 'the end of the file' : `${JSON.stringify(text[i])}`);
  const ws = () => {
    while (i < text.length && (text[i] === ' ' || text[i] === '\t' || text[i] === '\n' || text[i] === '\r')) i++;
  };
  const string = (): string => {
    const start = i;
    i++; // the opening quote
    let out = '';
    while (i < text.length) {
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return out;
      }
      if (c < 0x20) fail('a control character inside a string (write it as an escape, e.g. \\n)');
      if (c === 0x5c) {
        const e = text[i + 1];
        if (e === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) fail('\\u must be followed by four hex digits');
          out += String.fromCharCode(Number.parseInt(text.slice(i + 2, i + 6), 16));
          i += 6;
        } else if (e !== undefined && '"\\/bfnrt'.includes(e)) {
          out += e;
          i += 2;
        } else {
          fail(`unknown escape \\${e ?? ''}`);
        }
        continue;
      }
      out += text[i];
      i++;
    }
    return fail('a string is not closed (missing ")', start);
  };
  /** The members of an object or the items of a list, `item` reading one; `i` is at the opening bracket. */
  const sequence = (close: '}' | ']', item: () => void): void => {
    i++;
    ws();
    if (text[i] === close) {
      i++;
      return;
    }
    for (;;) {
      item();
      ws();
      if (text[i] === ',') {
        const comma = i++;
        ws();
        if (text[i] === close) fail(`a comma before "${close}" (JSON allows no trailing comma)`, comma);
        continue;
      }
      if (text[i] === close) {
        i++;
        return;
      }
      fail(`expected "," or "${close}" after a value, found ${found()}`);
    }
  };
  const value = (depth: number): void => {
    if (depth > 512) fail('nested too deeply');
    ws();
    const c = text[i];
    if (c === '{') {
      const keys = new Set<string>();
      return sequence('}', () => {
        ws();
        if (text[i] !== '"') fail(`expected a key in double quotes, found ${found()}`);
        const keyAt = i;
        const key = string();
        if (keys.has(key)) fail(`duplicate key ${JSON.stringify(key)}`, keyAt);
        keys.add(key);
        ws();
        if (text[i] !== ':') fail(`expected ":" after the key, found ${found()}`);
        i++;
        value(depth + 1);
      });
    }
    if (c === '[') return sequence(']', () => value(depth + 1));
    if (c === '"') {
      string();
      return;
    }
    const rest = text.slice(i);
    const number = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/.exec(rest);
    if (number) {
      i += number[0].length;
      return;
    }
    for (const word of ['true', 'false', 'null']) {
      if (rest.startsWith(word)) {
        i += word.length;
        return;
      }
    }
    fail(i >= text.length ? 'unexpected end of the file (a value is missing)' : `expected a value, found ${found()}`);
  };
  try {
    value(0);
    ws();
    if (i < text.length) fail(`more text after the end of the JSON value: ${found()}`);
    return undefined;
  } catch (err) {
    if (err !== null && typeof err === 'object' && 'reason' in err) return err as SyntaxFault;
    throw err;
  }
}
