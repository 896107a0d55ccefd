/**
 * Problems with a config file, in the one form `check` and `start` print:
 * `path.to.key: what is wrong` (README, "Put it in front of your API").
 *
 * The schema library's own messages (`Invalid input: expected string, received
 * number`, `Too small: expected number to be >=1`) are never shown: `configErrorMap`
 * words every issue the schema can raise in the project's terms, naming the form the
 * key expects (`must be a whole number from 1 to 65536`), and `zodProblems` turns the
 * issues into problems, with a suggestion for a misspelt key.
 */
import type { z } from 'zod';

/** One problem with a config file, as `path.to.key: what is wrong`. */
export interface ConfigProblem {
  readonly path: string;
  readonly message: string;
}

export class ConfigError extends Error {
  readonly code = 'CONFIG_INVALID';
  constructor(readonly problems: readonly ConfigProblem[]) {
    super(problems.map(formatProblem).join('\n'));
    this.name = 'ConfigError';
  }
}

export function formatProblem(p: ConfigProblem): string {
  return `${p.path || '(root)'}: ${p.message}`;
}

// --- the schema, as seen from here ----------------------------------------------------
// zod 4 keeps each schema's definition in `_zod.def`; only the parts read below are typed.

interface CheckDef {
  readonly check?: string;
  readonly value?: unknown;
  readonly inclusive?: boolean;
  readonly minimum?: number;
  readonly maximum?: number;
  readonly format?: string;
}
interface Def {
  readonly type: string;
  readonly innerType?: Node;
  readonly in?: Node;
  readonly element?: Node;
  readonly shape?: Readonly<Record<string, Node>>;
  readonly valueType?: Node;
  readonly options?: readonly Node[];
  readonly entries?: Readonly<Record<string, string | number>>;
  readonly values?: readonly unknown[];
  readonly checks?: readonly { readonly _zod: { readonly def: CheckDef } }[];
}
interface Node {
  readonly _zod: { readonly def: Def };
}

const WRAPPERS: ReadonlySet<string> = new Set(['default', 'prefault', 'optional', 'nullable', 'readonly', 'nonoptional', 'catch', 'lazy']);

function unwrap(node: Node): Node {
  let n = node;
  for (let i = 0; i < 32; i++) {
    const def = n._zod.def;
    if (WRAPPERS.has(def.type) && def.innerType) n = def.innerType;
    else if (def.type === 'pipe' && def.in) n = def.in;
    else break;
  }
  return n;
}

const asNode = (schema: unknown): Node | undefined =>
  schema !== null && typeof schema === 'object' && '_zod' in schema ? (schema as Node) : undefined;

/** What a schema expects, when its type alone would not say it well (durations, URLs, header names). */
export interface Form {
  /** The expected form, after "must be": `a duration such as 5s, 1m, 1h30m`. */
  readonly form: string;
  /** The whole message for a value of the wrong kind, when the form alone would read badly. */
  readonly wrong?: (value: unknown) => string;
}

const FORMS = new WeakMap<object, Form>();

/**
 * Names the form a schema expects, for the messages about it. Returns the schema itself.
 *
 * @example const httpUrl = describedAs(z.string().refine(isHttpUrl, …), { form: 'an http:// or https:// URL' });
 */
export function describedAs<T extends object>(schema: T, form: Form): T {
  FORMS.set(schema, form);
  return schema;
}

/** A value as a message shows it: strings quoted and cut short, lists and mappings by kind. */
export function showValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (value === null || value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return String(value);
}

const listText = (items: readonly unknown[]): string => items.map(String).join(', ');

function checks(def: Def): CheckDef[] {
  return (def.checks ?? []).map((c) => c._zod.def);
}

function numberForm(def: Def): string {
  let whole = false;
  let min: { v: number; inclusive: boolean } | undefined;
  let max: { v: number; inclusive: boolean } | undefined;
  for (const c of checks(def)) {
    if (c.check === 'number_format' && (c.format === 'safeint' || c.format === 'int32' || c.format === 'uint32')) whole = true;
    if (c.check === 'greater_than' && typeof c.value === 'number') min = { v: c.value, inclusive: c.inclusive !== false };
    if (c.check === 'less_than' && typeof c.value === 'number') max = { v: c.value, inclusive: c.inclusive !== false };
  }
  const kind = whole ? 'a whole number' : 'a number';
  if (min?.inclusive && max?.inclusive) return `${kind} from ${min.v} to ${max.v}`;
  const parts = [
    min ? (min.inclusive ? `at least ${min.v}` : `greater than ${min.v}`) : '',
    max ? (max.inclusive ? `at most ${max.v}` : `less than ${max.v}`) : '',
  ].filter(Boolean);
  return parts.length > 0 ? `${kind} of ${parts.join(' and ')}` : kind;
}

const OPTIONAL: ReadonlySet<string> = new Set(['default', 'prefault', 'optional']);

/** An object's keys as a form shows them: the required ones, or else the first few. */
function objectKeys(def: Def): string {
  const shape = Object.entries(def.shape ?? {});
  const required = shape.filter(([, v]) => !OPTIONAL.has(v._zod.def.type)).map(([k]) => k);
  if (required.length > 0) return `with ${required.length === 1 ? required[0] : `${required.slice(0, -1).join(', ')} and ${required.at(-1)}`}`;
  const keys = shape.map(([k]) => k);
  return keys.length <= 6 ? `(keys: ${listText(keys)})` : `(keys such as ${listText(keys.slice(0, 4))}, …)`;
}

const minLength = (def: Def): number => Math.max(0, ...checks(def).map((c) => (c.check === 'min_length' ? (c.minimum ?? 0) : 0)));

/** The form a schema expects, after "must be": `a whole number from 1 to 65536`, `true or false`. */
export function formOf(schema: unknown): string {
  const start = asNode(schema);
  if (start === undefined) return 'a valid value';
  const own = FORMS.get(start);
  if (own) return own.form;
  const node = unwrap(start);
  const registered = FORMS.get(node);
  if (registered) return registered.form;
  const def = node._zod.def;
  switch (def.type) {
    case 'string':
      return minLength(def) > 0 ? 'a non-empty string' : 'a string';
    case 'number':
      return numberForm(def);
    case 'boolean':
      return 'true or false';
    case 'enum':
      return `one of ${listText(Object.values(def.entries ?? {}))}`;
    case 'literal':
      return (def.values ?? []).map((v) => JSON.stringify(v)).join(' or ');
    case 'array':
      return `a list of ${pluralOf(def.element)}`;
    case 'object':
      return `a mapping ${objectKeys(def)}`;
    case 'record':
      return `a mapping of names to ${pluralOf(def.valueType)}`;
    case 'union':
      return (def.options ?? []).map(formOf).join(', or ');
    default:
      return 'a valid value';
  }
}

/** The items of a list, in the plural: `strings`, `GET, HEAD, POST`, `mappings with the keys …`. */
function pluralOf(schema: Node | undefined): string {
  if (schema === undefined) return 'values';
  const node = unwrap(schema);
  const registered = FORMS.get(schema) ?? FORMS.get(node);
  if (registered) return `items that are each ${registered.form}`;
  const def = node._zod.def;
  switch (def.type) {
    case 'string':
      return minLength(def) > 0 ? 'non-empty strings' : 'strings';
    case 'enum':
      return listText(Object.values(def.entries ?? {}));
    case 'object':
      return `mappings, each ${objectKeys(def)}`;
    case 'boolean':
      return 'true or false values';
    default:
      return `items that are each ${formOf(node)}`;
  }
}

// --- messages ---------------------------------------------------------------------------

/** The raw issue zod hands an error map (the schema that owns it, the offending input). */
type RawIssue = z.core.$ZodRawIssue;

/**
 * The error map for every parse of the config schema (`safeParse(data, { error: configErrorMap })`):
 * a message in the project's words for every issue code zod 4 has. Messages a schema
 * sets itself (`.min(1, 'must list at least one audience')`) outrank it.
 */
export function configErrorMap(iss: RawIssue): string {
  const node = asNode(iss.schema) ?? asNode(iss.inst);
  const own = node ? (FORMS.get(node) ?? FORMS.get(unwrap(node))) : undefined;
  const form = formOf(node);
  switch (iss.code) {
    case 'invalid_type':
      if (iss.input === undefined) return `is required (${form})`;
      if (own?.wrong) return own.wrong(iss.input);
      if (iss.input === null) return `is empty; must be ${form}`;
      return `must be ${form}`;
    case 'too_small':
    case 'too_big': {
      const big = iss.code === 'too_big';
      const limit = big ? iss.maximum : iss.minimum;
      if (iss.origin === 'number' || iss.origin === 'int' || iss.origin === 'bigint') return `must be ${form}`;
      if (iss.origin === 'string') {
        if (!big && Number(limit) === 1) return 'must not be empty';
        return `must be at ${big ? 'most' : 'least'} ${String(limit)} characters long`;
      }
      if (iss.origin === 'array') {
        const element = node ? unwrap(node)._zod.def.element : undefined;
        const entries = element ? unwrap(element)._zod.def.entries : undefined;
        if (!big && Number(limit) === 1) return entries ? `must list at least one of ${listText(Object.values(entries))}` : 'must list at least one item';
        return `must list at ${big ? 'most' : 'least'} ${String(limit)} items`;
      }
      return `must be ${form}`;
    }
    case 'invalid_format':
      if (own) return `must be ${own.form}`;
      if (iss.format === 'regex' && 'pattern' in iss) return `must match the pattern ${String(iss.pattern)}`;
      return `must be a valid ${iss.format}`;
    case 'not_multiple_of':
      return `must be a multiple of ${String(iss.divisor)}`;
    case 'unrecognized_keys':
      return 'unknown key';
    case 'invalid_union':
      return `must be ${form}`;
    case 'invalid_key':
      return 'is not a valid name';
    case 'invalid_element':
      return 'has an entry that is not valid';
    case 'invalid_value': {
      const allowed = iss.values;
      if (allowed.length === 1) return `must be ${JSON.stringify(allowed[0])}`;
      const list = listText(allowed);
      if (typeof iss.input !== 'string') return `must be one of ${list}`;
      const near = closest(iss.input, allowed.filter((v): v is string => typeof v === 'string'));
      return `${showValue(iss.input)} is not one of ${list}${near === undefined ? '' : `; did you mean "${near}"?`}`;
    }
    case 'custom':
      return 'is not valid';
    default: {
      // A code this zod version does not have yet: still never zod's own wording.
      const unknown: never = iss;
      void unknown;
      return 'is not valid';
    }
  }
}

// --- did you mean ---------------------------------------------------------------------

/** Levenshtein distance (insertions, deletions and substitutions), case-insensitive. */
function distance(a: string, b: string): number {
  const s = a.toLowerCase();
  const t = b.toLowerCase();
  let prev = Array.from({ length: t.length + 1 }, (_, j) => j);
  for (let i = 1; i <= s.length; i++) {
    const cur = [i];
    for (let j = 1; j <= t.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (s[i - 1] === t[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[t.length]!;
}

/**
 * The known name a misspelling most likely means: one that differs only in case, or
 * else the nearest within two edits; the first such in `known` (schema order) on a tie.
 */
export function closest(word: string, known: readonly string[], prefer: (name: string) => boolean = () => false): string | undefined {
  const caseOnly = known.find((k) => k !== word && k.toLowerCase() === word.toLowerCase());
  if (caseOnly !== undefined) return caseOnly;
  let best: string | undefined;
  let bestScore = Number.POSITIVE_INFINITY;
  for (const k of known) {
    if (k === word) continue;
    const d = distance(word, k);
    if (d > 2) continue;
    // A key that is required and missing wins a tie: that is what the misspelling was meant to be.
    const score = d * 2 - (prefer(k) ? 1 : 0);
    if (score < bestScore) {
      best = k;
      bestScore = score;
    }
  }
  return best;
}

/** The schema at a path of the data (objects, lists, records; into the union option that has the key). */
function schemaAt(root: Node, path: readonly PropertyKey[]): Node | undefined {
  let node: Node | undefined = root;
  for (const seg of path) {
    if (node === undefined) return undefined;
    node = step(unwrap(node), seg);
  }
  return node;
}

function step(node: Node, seg: PropertyKey): Node | undefined {
  const def = node._zod.def;
  if (def.type === 'object') return def.shape?.[String(seg)];
  if (def.type === 'array') return def.element;
  if (def.type === 'record') return def.valueType;
  if (def.type === 'union') {
    for (const option of def.options ?? []) {
      const next = step(unwrap(option), seg);
      if (next !== undefined) return next;
    }
  }
  return undefined;
}

function keysOf(node: Node | undefined): string[] {
  if (node === undefined) return [];
  const def = unwrap(node)._zod.def;
  if (def.type === 'object') return Object.keys(def.shape ?? {});
  if (def.type === 'union') return [...new Set((def.options ?? []).flatMap(keysOf))];
  return [];
}

// --- issues → problems ------------------------------------------------------------------

const PLAIN_KEY = /^[A-Za-z0-9_.-]+$/;

function pathText(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (!PLAIN_KEY.test(String(seg))) out += `[${JSON.stringify(String(seg))}]`;
    else out += out ? `.${String(seg)}` : String(seg);
  }
  return out;
}

function valueAt(data: unknown, path: readonly PropertyKey[]): unknown {
  let cur = data;
  for (const seg of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[seg];
  }
  return cur;
}

interface Flat {
  readonly path: readonly PropertyKey[];
  readonly message: string;
  /** An unknown key (the last path segment). */
  readonly unknown?: boolean;
}

/** Option issues that show the input had that option's type (nothing refused at its root). */
const typeMatched = (issues: readonly z.core.$ZodIssue[]): boolean =>
  !issues.some((i) => i.path.length === 0 && (i.code === 'invalid_type' || i.code === 'invalid_value'));

function flatten(issues: readonly z.core.$ZodIssue[], prefix: readonly PropertyKey[], out: Flat[]): Flat[] {
  for (const issue of issues) {
    const path = [...prefix, ...issue.path];
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) out.push({ path: [...path, key], message: 'unknown key', unknown: true });
    } else if (issue.code === 'invalid_union') {
      // The one option whose type the value has says more than "must be X, or Y".
      const matched = issue.errors.filter(typeMatched);
      if (matched.length === 1) flatten(matched[0]!, path, out);
      else out.push({ path, message: issue.message });
    } else if (issue.code === 'invalid_key') {
      out.push({ path, message: issue.issues.map((i) => i.message).join('; ') || issue.message });
    } else {
      out.push({ path, message: issue.message });
    }
  }
  return out;
}

const REQUIRED = /^is required\b/;

/**
 * The schema's issues as problems, in the order found. An unknown key that is close to a
 * known key of the same object gets `did you mean "…"?`, and when that key is missing
 * and required, its `is required` line is folded into the same line:
 * `issuers[0].isuer: unknown key; did you mean "issuer"? (issuers[0].issuer is required)`.
 */
export function zodProblems(error: z.ZodError, data: unknown, schema: z.ZodType): ConfigProblem[] {
  const root = asNode(schema)!;
  const flat = flatten(error.issues, [], []);
  const byPath = new Map(flat.map((f) => [pathText(f.path), f]));
  const folded = new Set<Flat>();
  const out: { flat: Flat; problem: ConfigProblem }[] = [];
  for (const f of flat) {
    if (!f.unknown) {
      out.push({ flat: f, problem: { path: pathText(f.path), message: f.message } });
      continue;
    }
    const parent = f.path.slice(0, -1);
    const key = String(f.path.at(-1));
    const present = valueAt(data, parent);
    const missing = (k: string) => REQUIRED.test(byPath.get(pathText([...parent, k]))?.message ?? '');
    const candidates = keysOf(schemaAt(root, parent)).filter((k) => missing(k) || valueAt(present, [k]) === undefined);
    const near = closest(key, candidates, missing);
    let message = 'unknown key';
    if (near !== undefined) {
      message += `; did you mean "${near}"?`;
      const required = byPath.get(pathText([...parent, near]));
      if (required !== undefined && REQUIRED.test(required.message)) {
        message += ` (${pathText([...parent, near])} is required)`;
        folded.add(required);
      }
    }
    out.push({ flat: f, problem: { path: pathText(f.path), message } });
  }
  return out.filter((o) => !folded.has(o.flat)).map((o) => o.problem);
}
