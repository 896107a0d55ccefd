/**
 * Issue 7, "Done when": `npm run demo` prints working commands whose answers match
 * what it says. This starts the real demo command (dist/demo/cli.js, as `npm run demo`
 * does after building) on free ports, takes the tour it prints, runs each printed
 * command line verbatim in bash (curl appends only its status code), and compares the
 * answers with the status, challenge and echoed headers the tour announces.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, spawnDemo } from './helpers.js';
import { recordOutput, tokensFile } from '../leaks.js';
import { freePort } from '../authn/idp.js';

interface Step {
  n: number;
  status: number;
  /** The command lines before the curl line: `X=$(…)`, `{ read -r X; read -r Y; } < <(…)`, `node … logout "$X"`. */
  assignments: string[];
  curl: string;
  challenge: string | null;
  echoes: string | null;
}

/** The numbered steps of the printed tour. */
function parseTour(text: string): Step[] {
  const steps: Step[] = [];
  let cur: Step | null = null;
  for (const raw of text.split('\n')) {
    const head = /^(\d+)\. .* → (\d{3})$/.exec(raw);
    if (head) {
      cur = { n: Number(head[1]), status: Number(head[2]), assignments: [], curl: '', challenge: null, echoes: null };
      steps.push(cur);
      continue;
    }
    if (cur === null) continue;
    const line = raw.trim();
    if (/^[A-Z]+=\$\(.*\)$/.test(line) || /^\{ (read -r [A-Z]+; )+\} < <\(.*\)$/.test(line) || /^node \S+ logout "\$[A-Z]+"/.test(line)) cur.assignments.push(line);
    else if (line.startsWith('curl ') && cur.curl === '') cur.curl = line;
    else if (line.startsWith('answers  WWW-Authenticate: ')) cur.challenge = line.slice('answers  WWW-Authenticate: '.length);
    else if (line.startsWith('echoes   ')) cur.echoes = line.slice('echoes   '.length);
  }
  return steps;
}

let demo: ChildProcess;
let out: () => string = () => '';
let ports: Record<string, number>;

beforeAll(async () => {
  ports = { gateway: await freePort(), admin: await freePort(), idp: await freePort(), upstream: await freePort() };
  const started = await spawnDemo({ gateway: ports['gateway']!, admin: ports['admin']!, idp: ports['idp']!, upstream: ports['upstream']! }, 'demo-start');
  demo = started.proc;
  out = started.out;
});

afterAll(async () => {
  if (demo && demo.exitCode === null) {
    const exited = new Promise((r) => demo.once('exit', r));
    demo.kill('SIGINT');
    await exited;
  }
});

describe('npm run demo', () => {
  it('prints the TOTP secret as an otpauth URI and as a QR code', () => {
    expect(out()).toMatch(/otpauth:\/\/totp\/[^\s]+secret=[A-Z2-7]+/);
    // qrcode draws with block characters; captured output gets no terminal colour codes.
    expect(out()).toMatch(/[▀▄█]{7}/);
    expect(out()).not.toContain('\u001b[');
    expect(out()).toContain(`http://127.0.0.1:${ports['gateway']}`);
  });

  it('prints commands whose answers are what it says they are', () => {
    const steps = parseTour(out());
    expect(steps.map((s) => s.n)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    // The DPoP token with its proof, and the logout, are commands of their own.
    expect(steps[6]!.assignments).toEqual([expect.stringMatching(/^\{ read -r DPOP; read -r PROOF; \} < <\(node dist\/demo\/cli\.js token --pwd --dpop --url /)]);
    expect(steps[8]!.assignments).toEqual([`node dist/demo/cli.js logout "$MFA" --idp http://127.0.0.1:${ports['idp']}`]);
    // The parser found what the checks below compare: a tour whose format drifted would
    // otherwise skip them and pass on statuses alone.
    expect(steps.filter((s) => s.challenge !== null).length).toBeGreaterThanOrEqual(3);
    expect(steps.filter((s) => s.echoes !== null).length).toBeGreaterThanOrEqual(1);
    // One bash session, as a reader pasting the commands would have: later steps reuse $MFA.
    // The tokens the commands mint go into the whole-run leak check's list (test/leaks).
    const tokens = tokensFile();
    // The variables a command line fills: X of `X=$(…)`, each of `{ read -r X; read -r Y; }`.
    const filled = (line: string) => (line.startsWith('{') ? [...line.matchAll(/read -r ([A-Z]+);/g)].map((m) => m[1]!) : /^[A-Z]+=/.test(line) ? [line.split('=')[0]!] : []);
    const keep = (assignment: string) => (tokens ? filled(assignment).map((v) => `printf '%s\\n' "$${v}" >> "$LEAK_TOKENS"`) : []);
    const script = steps
      .flatMap((s) => [...s.assignments.flatMap((a) => [a, ...keep(a)]), `echo "@@step ${s.n}"`, `${s.curl} -w '\\n@@status %{http_code}\\n'`])
      .join('\n');
    const run = spawnSync('bash', ['-e', '-c', script], { cwd: ROOT, encoding: 'utf8', timeout: 90_000, env: { ...process.env, LEAK_TOKENS: tokens ?? '' } });
    recordOutput('demo-tour-commands.stdout', run.stdout);
    recordOutput('demo-tour-commands.stderr', run.stderr);
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    const answers = run.stdout.split('@@step ').slice(1);
    expect(answers).toHaveLength(steps.length);
    for (const [i, step] of steps.entries()) {
      const answer = answers[i]!;
      expect(answer.startsWith(`${step.n}\n`)).toBe(true);
      expect(answer).toContain(`@@status ${step.status}\n`);
      if (step.challenge !== null) {
        const header = /^www-authenticate: (.*)\r$/im.exec(answer)?.[1];
        expect(header, `step ${step.n} sends a challenge`).toBeDefined();
        // The tour elides the wordy error_description; every other piece must be there verbatim.
        for (const piece of step.challenge.split(', ').filter((p) => !p.startsWith('error_description='))) {
          expect(header).toContain(piece);
        }
      }
      if (step.echoes !== null) {
        for (const pair of step.echoes.split(', ')) expect(answer).toContain(pair);
      }
    }
  });
});
