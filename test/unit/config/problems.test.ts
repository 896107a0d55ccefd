import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { configSchema } from '../../../src/config/schema.js';
import { configErrorMap } from '../../../src/config/problems.js';
import { ConfigError, loadConfig, loadConfigFile, redactSecrets } from '../../../src/config/load.js';
import { jsonFault } from '../../../src/config/syntax.js';
import { FULL_CONFIG, ZOD_WORDING, problemsOf, schemaPaths, withValue } from './schema-walk.js';

const minimal = {
  issuers: [{ name: 'corp', issuer: 'https://idp', jwksUri: 'https://idp/keys', audience: ['api'] }],
  upstreams: { a: { url: 'http://127.0.0.1:3001' } },
  routes: [{ path: '/', upstream: 'a' }],
};

describe('messages in the project’s words, naming the expected form', () => {
  it('words the documented examples exactly', () => {
    expect(problemsOf({ ...minimal, verifier: { jwksTimeout: 5 } })).toEqual(['verifier.jwksTimeout: 5 is not a duration; use a duration such as 5s, 1m, 1h30m']);
    expect(problemsOf({ ...minimal, verifier: { jwksTimeout: '5 s' } })).toEqual(['verifier.jwksTimeout: "5 s" is not a duration; use a duration such as 5s, 1m, 1h30m']);
    expect(problemsOf({ ...minimal, upstreams: { a: { url: 'http://127.0.0.1:3001', connections: 0 } } })).toEqual([
      'upstreams.a.connections: must be a whole number from 1 to 65536',
    ]);
    expect(problemsOf({ ...minimal, upstreams: { a: { url: 'http://127.0.0.1:3001', connections: 1.5 } } })).toEqual([
      'upstreams.a.connections: must be a whole number from 1 to 65536',
    ]);
    expect(problemsOf({ ...minimal, routes: [{ path: '/', upstream: 'a', methods: 'GET' }] })).toEqual([
      'routes[0].methods: must be a list of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS',
    ]);
  });

  it('names numbers’ bounds, enums’ values, lists, mappings and missing keys', () => {
    expect(
      problemsOf({
        ...minimal,
        listen: { port: 'eighty' },
        verifier: { threads: -1, maxQueue: 0, taskTimeout: '5ms' },
        issuers: [{ ...minimal.issuers[0], profile: 'okat', audience: [] }],
        routes: [{ path: '/', upstream: 'a', methods: ['get'], auth: 'never' }],
        mfa: null,
        rateLimit: { spraying: { window: '500ms' } },
      }),
    ).toEqual([
      'listen.port: must be a whole number from 0 to 65535',
      'verifier.threads: must be a whole number from 0 to 64',
      'verifier.maxQueue: must be a whole number of at least 1',
      'verifier.taskTimeout: must be at least 10ms',
      'issuers[0].profile: "okat" is not one of generic, keycloak, okta, auth0, entra; did you mean "okta"?',
      'issuers[0].audience: must list at least one audience',
      'mfa: is empty; must be a mapping (keys: amr, acr, maxAge)',
      'routes[0].methods[0]: "get" is not one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS; did you mean "GET"?',
      'routes[0].auth: "never" is not one of none, token, mfa',
      'rateLimit.spraying.window: must be at least 1s',
    ]);
    expect(problemsOf({ routes: [] })).toEqual([
      'upstreams: is required (a mapping of upstream names (A-Z a-z 0-9 _ . -) to upstreams, each with at least a url)',
      'routes: must list at least one route',
    ]);
    expect(problemsOf({ ...minimal, routes: [{ path: '/', upstream: 'a', methods: [] }] })).toEqual([
      'routes[0].methods: must list at least one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS',
    ]);
    expect(problemsOf('text')).toEqual([': must be a mapping with upstreams and routes']);
  });

  it('explains a route rate limit by the option the value looks like (a mapping, or false)', () => {
    const route = (rateLimit: unknown) => ({ ...minimal, routes: [{ path: '/', upstream: 'a', rateLimit }] });
    expect(problemsOf(route({ address: { points: 'x', duration: '1s' } }))).toEqual(['routes[0].rateLimit.address.points: must be a whole number of at least 1']);
    expect(problemsOf(route({ address: true }))).toEqual(['routes[0].rateLimit.address: must be a mapping with points and duration, or false']);
    expect(problemsOf(route({ address: { points: 1, duraton: '1s' } }))).toEqual([
      'routes[0].rateLimit.address.duraton: unknown key; did you mean "duration"? (routes[0].rateLimit.address.duration is required)',
    ]);
  });

  it('names record keys that are not valid names, quoted in the path', () => {
    expect(problemsOf({ ...minimal, upstreams: { a: minimal.upstreams.a, 'b c': { url: 'http://x' } } })).toEqual(['upstreams["b c"]: upstream names use A-Z a-z 0-9 _ . -']);
  });
});

describe('did you mean, folded into the "is required" line of the key meant', () => {
  it('merges a misspelt required key with its missing line', () => {
    const iss = { name: 'corp', isuer: 'https://idp', jwksUri: 'https://idp/keys', audience: ['api'] };
    expect(problemsOf({ ...minimal, issuers: [iss] })).toEqual(['issuers[0].isuer: unknown key; did you mean "issuer"? (issuers[0].issuer is required)']);
  });

  it('counts a case-only difference as close, whatever its length', () => {
    const iss = { name: 'corp', Issuer: 'https://idp', jwksUri: 'https://idp/keys', audience: ['api'] };
    expect(problemsOf({ ...minimal, issuers: [iss] })).toEqual(['issuers[0].Issuer: unknown key; did you mean "issuer"? (issuers[0].issuer is required)']);
    expect(problemsOf({ ...minimal, routes: [{ path: '/', upstream: 'a', ForwardAuthorization: false }] })).toEqual([
      'routes[0].ForwardAuthorization: unknown key; did you mean "forwardAuthorization"?',
    ]);
  });

  it('suggests within two edits only, and never a key the object already has', () => {
    expect(problemsOf({ ...minimal, routes: [{ path: '/', upstream: 'a', roels: ['x'] }] })).toEqual(['routes[0].roels: unknown key; did you mean "roles"?']);
    expect(problemsOf({ ...minimal, routes: [{ path: '/', upstream: 'a', rolesxyz: ['x'] }] })).toEqual(['routes[0].rolesxyz: unknown key']);
    // `path` is there: `paht` is not a misspelling of it, only an extra key.
    expect(problemsOf({ ...minimal, routes: [{ path: '/', paht: '/x', upstream: 'a' }] })).toEqual(['routes[0].paht: unknown key']);
    expect(problemsOf({ ...minimal, routes: [{ paht: '/', upstream: 'a' }] })).toEqual([
      'routes[0].paht: unknown key; did you mean "path"? (routes[0].path is required)',
    ]);
  });
});

describe('the error map covers every issue code, in the project’s words', () => {
  it('walks the whole schema with wrong values of every kind; no message is zod’s, none is empty', () => {
    expect(problemsOf(FULL_CONFIG)).toEqual([]);
    const codes = new Set<string>();
    const collect = (issues: readonly z.core.$ZodIssue[]): void => {
      for (const i of issues) {
        codes.add(i.code);
        if (i.code === 'invalid_union') i.errors.forEach(collect);
        if (i.code === 'invalid_key' || i.code === 'invalid_element') collect(i.issues);
      }
    };
    const values: unknown[] = [undefined, null, 'x', '', -1, 0.5, 70_000, true, [], ['x'], [{}], { zz: 1 }, { 'b c': {} }];
    const paths = schemaPaths(configSchema);
    expect(paths.length).toBeGreaterThan(100);
    let checked = 0;
    for (const path of paths) {
      for (const value of values) {
        const data = withValue(FULL_CONFIG, path, value);
        collect(configSchema.safeParse(data, { error: configErrorMap }).error?.issues ?? []);
        for (const line of problemsOf(data)) {
          checked++;
          expect(line, `${JSON.stringify(path)} = ${JSON.stringify(value)}`).not.toMatch(ZOD_WORDING);
          expect(line).toMatch(/^[^:]*: \S/);
        }
      }
    }
    expect(checked).toBeGreaterThan(1000);
    // Every code this schema can raise came up (and was worded above).
    for (const code of ['invalid_type', 'too_small', 'too_big', 'invalid_format', 'unrecognized_keys', 'invalid_union', 'invalid_key', 'invalid_value', 'custom']) {
      expect(codes, code).toContain(code);
    }
  });

  it('words the codes this schema cannot raise too', () => {
    const words = (schema: z.ZodType, value: unknown) => schema.safeParse(value, { error: configErrorMap }).error!.issues.map((i) => i.message);
    expect(words(z.number().multipleOf(5), 7)).toEqual(['must be a multiple of 5']);
    expect(words(z.map(z.any(), z.number()), new Map([[{}, 'x']]))).toEqual(['has an entry that is not valid']);
    expect(words(z.email(), 'nope')).toEqual(['must be a valid email']);
    expect(words(z.string().max(3), 'abcd')).toEqual(['must be at most 3 characters long']);
    expect(words(z.array(z.number()).max(1), [1, 2])).toEqual(['must list at most 1 items']);
    expect(words(z.number().gt(0).lt(1), 1)).toEqual(['must be a number of greater than 0 and less than 1']);
    expect(words(z.custom(() => false), 1)).toEqual(['is not valid']);
  });
});

describe('syntax errors at file:line:column', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cfg-syntax-'));
  const errorsOf = (name: string, text: string): string[] => {
    writeFileSync(join(dir, name), text);
    try {
      loadConfig(join(dir, name));
      return [];
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      return err.problems.map((p) => `${p.path}: ${p.message}`.replace(`${dir}/`, ''));
    }
  };

  it('YAML: the library’s short reason, at its position', () => {
    expect(errorsOf('a.yaml', 'listen:\n  host: x\n port: 1\n')).toEqual(['a.yaml:3:1: YAML: All mapping items must start at the same column']);
    expect(errorsOf('b.yaml', 'routes:\n  - path: "/\n')).toEqual(['b.yaml:3:1: YAML: Missing closing "quote']);
    expect(errorsOf('c.yaml', 'listen: {}\n---\nlisten: {}\n')).toEqual([
      'c.yaml:2:1: YAML: the file holds more than one YAML document (a second ---); a config file is one document',
    ]);
    expect(errorsOf('d.yaml', '\ufeffa: 1\na: 2\n')).toEqual(['d.yaml:2:1: YAML: Map keys must be unique']);
  });

  it('JSON: where it goes wrong and why, without quoting the file’s text', () => {
    expect(errorsOf('a.json', '{\n  "listen": {"port": }\n}')).toEqual(['a.json:2:22: JSON: expected a value, found "}"']);
    expect(errorsOf('b.json', '{"a": 1,\n}')).toEqual(['b.json:1:8: JSON: a comma before "}" (JSON allows no trailing comma)']);
    expect(errorsOf('c.json', '{"a": 1, "a": 2}')).toEqual(['c.json:1:10: JSON: duplicate key "a"']);
    expect(errorsOf('d.json', '{"listen": {"tls": {"passphrase": "s3cret')).toEqual(['d.json:1:35: JSON: a string is not closed (missing ")']);
    expect(errorsOf('e.json', '')).toEqual(['e.json:1:1: JSON: unexpected end of the file (a value is missing)']);
    expect(errorsOf('f.json', '{} x')).toEqual(['f.json:1:4: JSON: more text after the end of the JSON value: "x"']);
  });

  it('the JSON scan accepts exactly what JSON.parse accepts on valid documents', () => {
    for (const text of ['{}', '[]', '0', '-1.5e+3', '"\\u00e9\\n"', 'true', ' null ', '{"a":[1,{"b":false}],"c":"\\"q\\""}']) {
      expect(jsonFault(text), text).toBeUndefined();
      expect(() => JSON.parse(text)).not.toThrow();
    }
    for (const text of ['01', '1.', '.5', "'a'", '{a:1}', '[1,]', '"\t"', '"\\x"', 'nul', '+1', '{"a" 1}']) {
      expect(jsonFault(text), text).toBeDefined();
      expect(() => JSON.parse(text), text).toThrow();
    }
  });
});

describe('log.level, MFA_GATEWAY_LOG_LEVEL', () => {
  const level = (data: unknown, env: NodeJS.ProcessEnv) => {
    const dir = mkdtempSync(join(tmpdir(), 'cfg-level-'));
    writeFileSync(join(dir, 'g.json'), JSON.stringify(data));
    return loadConfigFile(join(dir, 'g.json'), env).config.log.level;
  };

  it('the file wins over the environment, the environment over the default info', () => {
    expect(level(minimal, {})).toBe('info');
    expect(level(minimal, { MFA_GATEWAY_LOG_LEVEL: 'debug' })).toBe('debug');
    expect(level({ ...minimal, log: { level: 'warn' } }, { MFA_GATEWAY_LOG_LEVEL: 'debug' })).toBe('warn');
    expect(level({ ...minimal, log: { level: 'warn' } }, { MFA_GATEWAY_LOG_LEVEL: 'verbose' })).toBe('warn');
  });

  it('an unknown level is a problem, from the file or the environment', () => {
    expect(problemsOf({ ...minimal, log: { level: 'verbose' } })).toEqual(['log.level: "verbose" is not one of fatal, error, warn, info, debug, trace, silent']);
    expect(problemsOf(minimal, { MFA_GATEWAY_LOG_LEVEL: 'verbose' })).toEqual([
      'MFA_GATEWAY_LOG_LEVEL (environment): "verbose" is not a log level; use one of fatal, error, warn, info, debug, trace, silent',
    ]);
  });
});

describe('redactSecrets', () => {
  it('hides the TLS passphrase and URL passwords, and nothing else', () => {
    expect(
      redactSecrets({
        listen: { tls: { cert: 'c.pem', key: 'k.pem', passphrase: 'hunter2' } },
        upstreams: { a: { url: 'https://svc:p%40ss@api.internal:8443/v1' }, b: { url: 'http://user@x' } },
        routes: [{ path: '/a:b@c' }],
      }),
    ).toEqual({
      listen: { tls: { cert: 'c.pem', key: 'k.pem', passphrase: '[redacted]' } },
      upstreams: { a: { url: 'https://svc:[redacted]@api.internal:8443/v1' }, b: { url: 'http://user@x' } },
      routes: [{ path: '/a:b@c' }],
    });
  });
});
