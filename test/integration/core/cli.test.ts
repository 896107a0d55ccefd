/**
 * The CLI as users run it (the built dist/cli.js): --help and usage errors, `check
 * --print`, the same problem list from `start` as from `check`, the log level's
 * sources and their order, and SIGHUP.
 */
import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import YAML from 'yaml';
import { ROOT, baseConfig, runCli, startGatewayProcess, tempDir, writeConfig } from '../harness.js';
import { makeKey } from '../authn/idp.js';

const valid = () => baseConfig({ upstreams: { u: { url: 'http://127.0.0.1:1' } }, routes: [{ path: '/', upstream: 'u', auth: 'none' }] });

/** Every environment variable src/ reads (process.env['NAME'] / process.env.NAME), and those uWebSockets.js reads. */
function envNamesInSrc(): string[] {
  const names = new Set<string>(['UWS_USE_FALLBACK']);
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (p.endsWith('.ts')) {
        const text = readFileSync(p, 'utf8');
        for (const m of text.matchAll(/process\.env(?:\[['"]([A-Z0-9_]+)['"]\]|\.([A-Z0-9_]+))/g)) names.add(m[1] ?? m[2]!);
        for (const m of text.matchAll(/_ENV = '([A-Z0-9_]+)'/g)) names.add(m[1]!);
      }
    }
  };
  walk(join(ROOT, 'src'));
  return [...names].sort();
}

describe('--help and usage errors', () => {
  it('--help lists every command, flag and environment variable, and exits 0', async () => {
    for (const args of [['--help'], ['-h'], ['help'], ['start', '--help']]) {
      const r = await runCli(args);
      expect(r.code, args.join(' ')).toBe(0);
      expect(r.stderr).toBe('');
      for (const command of ['start --config FILE', 'check --config FILE', 'reload --config FILE', 'explain --config FILE --path PATH', 'help']) {
        expect(r.stdout).toMatch(new RegExp(`^  ${command}`, 'm'));
      }
      for (const flag of ['--config FILE', '--log-level LEVEL', '--print', '--watch', '--path PATH', '--method METHOD', '--token TOKEN', '--token-file FILE', '--header NAME:VALUE', '--version', '--help']) {
        expect(r.stdout).toMatch(new RegExp(`^  ${flag}[ ,]`, 'm'));
      }
      const env = envNamesInSrc();
      expect(env).toEqual(['MFA_GATEWAY_FAILPOINTS', 'MFA_GATEWAY_LOG_LEVEL', 'MFA_GATEWAY_THREADS', 'UWS_USE_FALLBACK']);
      for (const name of env) expect(r.stdout).toMatch(new RegExp(`^  ${name} `, 'm'));
      expect(r.stdout).toContain('config/gateway.example.yaml');
    }
  });

  it('an unknown command or flag, a missing one, or a flag of another command: exit 2 with the usage', async () => {
    const cfg = writeConfig(valid());
    const cases: [string[], RegExp][] = [
      [['frobnicate'], /^mfa-gateway: unknown command "frobnicate"\nusage: mfa-gateway COMMAND/],
      [['check', '--config', cfg, '--verbose'], /^mfa-gateway: Unknown option '--verbose'\nusage:/],
      [[], /^mfa-gateway: a command is needed\nusage:/],
      [['check'], /^mfa-gateway: check needs --config FILE\nusage:/],
      [['start', '--config', cfg, '--print'], /^mfa-gateway: start takes no --print\nusage:/],
      [['check', '--config', cfg, 'extra'], /^mfa-gateway: unexpected argument "extra"\nusage:/],
      [
        ['start', '--config', cfg, '--log-level', 'verbose'],
        /^mfa-gateway: --log-level: "verbose" is not a log level; use one of fatal, error, warn, info, debug, trace, silent\nusage:/,
      ],
    ];
    for (const [args, message] of cases) {
      const r = await runCli(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).toContain('environment:');
      expect(r.stdout).toBe('');
    }
  });

  it('--version prints the package version', async () => {
    const r = await runCli(['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${(JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version}\n`);
  });
});

describe('check --print', () => {
  it('prints the effective config, every default filled in, secrets redacted', async () => {
    const dir = tempDir('mfa-print-');
    writeFileSync(join(dir, 'gw.crt'), 'not checked here');
    writeFileSync(join(dir, 'gw.key'), 'not checked here');
    const cfg = writeConfig(
      {
        listen: { port: 8443, tls: { cert: 'gw.crt', key: 'gw.key', passphrase: 'hunter2-passphrase' } },
        upstreams: { u: { url: 'https://svc:upstream-pass@api.internal/v1' } },
        routes: [{ path: '/', upstream: 'u', auth: 'none' }],
      },
      dir,
    );
    const r = await runCli(['check', '--config', cfg, '--print']);
    expect(r.code).toBe(0);
    expect(r.stdout).not.toContain('hunter2-passphrase');
    expect(r.stdout).not.toContain('upstream-pass');
    expect(r.stdout.split('\n')[0]).toBe(`# ${cfg}: ok (1 routes, 1 upstreams, 0 issuers)`);
    const effective = YAML.parse(r.stdout) as Record<string, Record<string, unknown>>;
    expect(effective['listen']).toEqual({ host: '0.0.0.0', port: 8443, tls: { cert: 'gw.crt', key: 'gw.key', passphrase: '[redacted]' } });
    expect(effective['upstreams']).toEqual({
      u: { url: 'https://svc:[redacted]@api.internal/v1', connections: 128, maxQueue: 1024, timeouts: { connect: '2s', headers: '30s', body: '30s' } },
    });
    expect(effective['verifier']).toMatchObject({ threads: 1, jwksCooldown: '30s', jwksTimeout: '5s', taskTimeout: '2s', cache: { max: 100_000, maxTtl: '5m' } });
    expect(effective['server']).toMatchObject({ drainTimeout: '10s', realm: 'mfa-gateway', threads: 'auto' });
    expect(effective['log']).toEqual({ level: 'info' });
    expect(Object.keys(effective)).toEqual([
      'listen', 'admin', 'server', 'verifier', 'issuers', 'upstreams', 'mfa', 'routes', 'identityHeaders', 'headers', 'audit', 'rateLimit', 'log',
      'dpop', 'backchannelLogout', 'revocation', 'identityAssertion', 'state',
    ]);
    expect(effective['state']).toEqual({
      store: 'memory',
      syncInterval: '250ms',
      onStoreDown: 'closed',
      redis: { url: 'redis://127.0.0.1:6379', keyPrefix: 'mfa-gateway:', connectTimeout: '2s', commandTimeout: '500ms' },
    });
    expect(effective['backchannelLogout']).toEqual({ enabled: true, path: '/.well-known/mfa-gateway/backchannel-logout' });
    expect(effective['identityAssertion']).toEqual({ enabled: false, header: 'x-mfa-gateway-assertion', issuer: 'mfa-gateway', lifetime: '1m' });
    // The printed config is itself a valid config that says the same.
    const again = writeConfig({ ...effective, listen: { ...effective['listen'], tls: undefined } }, dir);
    expect((await runCli(['check', '--config', again])).code).toBe(0);
  });

  it('shows the log level in force: --log-level, else log.level, else MFA_GATEWAY_LOG_LEVEL, else info', async () => {
    const level = async (config: Record<string, unknown>, env: Record<string, string>, flag: string[] = []) => {
      const r = await runCli(['check', '--config', writeConfig(config), '--print', ...flag], env);
      expect(r.code, r.stderr).toBe(0);
      return (YAML.parse(r.stdout) as { log: { level: string } }).log.level;
    };
    expect(await level(valid(), { MFA_GATEWAY_LOG_LEVEL: '' })).toBe('info');
    expect(await level(valid(), { MFA_GATEWAY_LOG_LEVEL: 'debug' })).toBe('debug');
    expect(await level({ ...valid(), log: { level: 'warn' } }, { MFA_GATEWAY_LOG_LEVEL: 'debug' })).toBe('warn');
    expect(await level({ ...valid(), log: { level: 'warn' } }, { MFA_GATEWAY_LOG_LEVEL: 'debug' }, ['--log-level', 'trace'])).toBe('trace');
  });
});

describe('start and check list the same problems, one per line', () => {
  it('prints a header line, then each problem on its own line, and exits 1', async () => {
    const cfg = writeConfig({ ...valid(), listen: { prot: 1 }, verifier: { jwksTimeout: 5 }, routes: [{ path: 'x', upstream: 'nope', auth: 'none' }] });
    const check = await runCli(['check', '--config', cfg]);
    const start = await runCli(['start', '--config', cfg]);
    expect(check.code).toBe(1);
    expect(start.code).toBe(1);
    const problems = [
      'listen.prot: unknown key; did you mean "port"?',
      'verifier.jwksTimeout: 5 is not a duration; use a duration such as 5s, 1m, 1h30m',
      'routes[0].path: must start with /',
      'routes[0].upstream: unknown upstream nope; one of u',
    ];
    expect(check.stderr).toBe(`${cfg}: 4 problems\n${problems.join('\n')}\n`);
    expect(start.stderr).toBe(`mfa-gateway: invalid config ${cfg}: 4 problems\n${problems.join('\n')}\n`);
    expect(start.stdout).toBe('');
  });

  it('an unknown MFA_GATEWAY_LOG_LEVEL is a config problem, not a crash', async () => {
    const r = await runCli(['start', '--config', writeConfig(valid())], { MFA_GATEWAY_LOG_LEVEL: 'verbose' });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `mfa-gateway: invalid config ${r.stderr.split(' ')[3]} 1 problem\nMFA_GATEWAY_LOG_LEVEL (environment): "verbose" is not a log level; use one of fatal, error, warn, info, debug, trace, silent\n`,
    );
  });

  it('a YAML syntax error names the file, line and column', async () => {
    const dir = tempDir('mfa-yaml-');
    const file = join(dir, 'gw.yaml');
    writeFileSync(file, 'routes:\n  - path: /\n    upstream: [a, b\n');
    const r = await runCli(['check', '--config', file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`${file}: 1 problem\n${file}:4:1: YAML: Flow sequence in block collection must be sufficiently indented and end with a ]\n`);
  });
});

describe('the log level of a running gateway', () => {
  const withKeys = async (extra: Record<string, unknown> = {}) => {
    const dir = tempDir('mfa-level-');
    const key = await makeKey('ES256', 'k1');
    writeFileSync(join(dir, 'keys.json'), JSON.stringify({ keys: [key.jwk] }));
    return writeConfig(
      {
        ...baseConfig({
          issuers: [{ name: 'corp', issuer: 'https://idp.example', jwksFile: 'keys.json', audience: ['api'] }],
          upstreams: { u: { url: 'http://127.0.0.1:1' } },
          routes: [{ path: '/', upstream: 'u', auth: 'none' }],
        }),
        ...extra,
      },
      dir,
    );
  };
  const debugLines = (out: string) => out.split('\n').filter((l) => l.includes('"level":"debug"'));

  it('--log-level wins over log.level; log.level over MFA_GATEWAY_LOG_LEVEL', async () => {
    const warnFile = await withKeys({ log: { level: 'warn' } });
    const flag = await startGatewayProcess(warnFile, {}, [process.execPath, join(ROOT, 'dist/cli.js'), 'start', '--config', warnFile, '--log-level', 'debug']);
    try {
      expect(debugLines(flag.stdout())).toContainEqual(expect.stringContaining('"msg":"key set fetched"'));
    } finally {
      await flag.stop();
    }
    const file = await startGatewayProcess(await withKeys({ log: { level: 'info' } }), { MFA_GATEWAY_LOG_LEVEL: 'debug' });
    try {
      expect(debugLines(file.stdout())).toEqual([]);
    } finally {
      await file.stop();
    }
    const env = await startGatewayProcess(await withKeys(), { MFA_GATEWAY_LOG_LEVEL: 'debug' });
    try {
      const line = JSON.parse(debugLines(env.stdout()).find((l) => l.includes('key set fetched'))!) as Record<string, unknown>;
      expect(line).toMatchObject({ level: 'debug', issuer: 'corp', keys: 1, refreshInMs: expect.any(Number) });
      expect(String(line['file'])).toMatch(/keys\.json$/);
    } finally {
      await env.stop();
    }
  });

  it('SIGHUP reloads the config and does not stop the gateway (systemctl reload sends it)', async () => {
    const gw = await startGatewayProcess(writeConfig(valid()));
    try {
      gw.proc.kill('SIGHUP');
      for (let i = 0; i < 100 && !gw.stdout().includes('"msg":"config reloaded"'); i++) await sleep(20);
      expect(gw.stdout()).toMatch(/"level":"info".*"trigger":"SIGHUP".*"unchanged":true.*"msg":"config reloaded"/);
      const res = await request(`${gw.adminUrl}/healthz`);
      expect(res.statusCode).toBe(200);
      await res.body.text();
      expect(gw.proc.exitCode).toBeNull();
    } finally {
      expect(await gw.stop()).toBe(0);
    }
  });
});
