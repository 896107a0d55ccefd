import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { DEMO_TOTP_SECRET, TotpClock, callGateway, constants, jwtPayload, startDemoStack, totpCode } from './helpers.js';
import { recordToken } from '../leaks.js';

// The demo's login page in a real browser: Debian's chromium driven by
// playwright-core types the password and a computed TOTP code, gets a token from
// the demo client's callback page, and calls the API through the gateway.
const CHROMIUM = '/usr/bin/chromium';
type Stack = Awaited<ReturnType<typeof startDemoStack>>;
let demo: Stack;
let browser: Browser;
const clock = new TotpClock();

beforeAll(async () => {
  // Missing chromium is a failure, never a skip: CI installs it (.ci/run).
  if (!existsSync(CHROMIUM)) {
    throw new Error(`chromium is not installed at ${CHROMIUM}: install it with \`apt-get install -y chromium\` (.ci/run does this in CI)`);
  }
  demo = await startDemoStack({ audit: false, now: clock.now });
  // playwright-core gives the browser a fresh temporary profile (user data dir) and removes it on close.
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-quic',
      '--no-first-run',
      '--disable-component-update',
      '--disable-sync',
    ],
    timeout: 45_000,
  });
});

afterAll(async () => {
  await browser?.close();
  await demo?.close();
});

async function withContext<T>(fn: (page: Page, context: BrowserContext) => Promise<T>): Promise<T> {
  // A fresh context per test: its own cookies, so each test starts logged out.
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    page.setDefaultTimeout(20_000);
    return await fn(page, context);
  } finally {
    await context.close();
  }
}

async function typePassword(page: Page, username: string, password: string): Promise<void> {
  await page.locator('#username').fill(username);
  await page.locator('#password').fill(password);
  await page.locator('#login-submit').click();
}

async function readToken(page: Page): Promise<string> {
  await page.locator('#access-token').waitFor();
  return recordToken((await page.locator('#access-token').inputValue()).trim());
}

describe('the demo login page in chromium', () => {
  it('password + typed TOTP code → an MFA token the gateway lets through, with identity headers', async () => {
    await withContext(async (page) => {
      await page.goto(`${demo.idp.issuer}/app/`);
      await page.locator('#login').click();
      await page.locator('#login-form').waitFor();

      await typePassword(page, 'alice', 'not-the-password');
      await expect(page.locator('[data-error="bad_credentials"]').textContent()).resolves.toContain('Wrong username or password');
      await typePassword(page, 'alice', 'wonderland');

      await page.locator('#otp-form').waitFor();
      clock.nextStep();
      const code = await totpCode(DEMO_TOTP_SECRET, clock.now());
      // A wrong code first: the page says so and lets the user try again.
      await page.locator('#code').fill(code === '000000' ? '111111' : '000000');
      await page.locator('#otp-submit').click();
      await page.locator('[data-error="otp_invalid"]').waitFor();
      await page.locator('#code').fill(code);
      await page.locator('#otp-submit').click();

      const token = await readToken(page);
      expect(jwtPayload(token)).toMatchObject({ iss: demo.idp.issuer, aud: constants.DEMO_AUDIENCE, sub: 'alice', amr: ['pwd', 'otp'] });
      expect(await page.locator('#claims').textContent()).toContain('"auth_time"');

      const r = await callGateway(demo.gatewayUrl, '/api/hello', token);
      expect(r.status, r.text).toBe(200);
      expect(r.body['path']).toBe('/api/hello');
      expect(r.body['identity']).toMatchObject({ 'x-auth-subject': 'alice', 'x-auth-amr': 'pwd,otp', 'x-auth-roles': 'reader,admin' });
    });
  });

  it('password only ("skip the second factor") → the 401 step-up challenge; asking for the acr again forces the TOTP step', async () => {
    await withContext(async (page) => {
      await page.goto(`${demo.idp.issuer}/app/login`);
      await typePassword(page, 'alice', 'wonderland');
      await page.locator('#otp-skip').click();
      const pwdToken = await readToken(page);
      expect(jwtPayload(pwdToken)['amr']).toEqual(['pwd']);

      const denied = await callGateway(demo.gatewayUrl, '/api/hello', pwdToken);
      expect(denied.status).toBe(401);
      expect(denied.challenge).toMatch(/^Bearer realm="mfa-gateway", error="insufficient_user_authentication"/);
      expect(denied.challenge).toContain(`acr_values="${constants.ACR_MFA}"`);

      // RFC 9470 §4: the client asks again with the acr the gateway named. The session
      // (password only) is not enough: the IdP asks for the login again, without "skip".
      await page.goto(`${demo.idp.issuer}/app/login?acr_values=${encodeURIComponent(constants.ACR_MFA)}`);
      await page.locator('[data-step-up]').waitFor();
      await typePassword(page, 'alice', 'wonderland');
      await page.locator('#otp-form').waitFor();
      expect(await page.locator('#otp-skip').count()).toBe(0);
      await page.locator('[data-skip-disabled]').waitFor();
      clock.nextStep();
      await page.locator('#code').fill(await totpCode(DEMO_TOTP_SECRET, clock.now()));
      await page.locator('#otp-submit').click();
      const mfaToken = await readToken(page);
      expect(jwtPayload(mfaToken)).toMatchObject({ amr: ['pwd', 'otp'], acr: constants.ACR_MFA });
      expect((await callGateway(demo.gatewayUrl, '/api/hello', mfaToken)).status).toBe(200);
    });
  });

  it('a login back-dated on the form gets the max_age step-up on the admin route', async () => {
    await withContext(async (page) => {
      await page.goto(`${demo.idp.issuer}/app/login`);
      await page.locator('#auth_age').selectOption('600');
      await typePassword(page, 'alice', 'wonderland');
      clock.nextStep();
      await page.locator('#code').fill(await totpCode(DEMO_TOTP_SECRET, clock.now()));
      await page.locator('#otp-submit').click();
      const token = await readToken(page);
      const r = await callGateway(demo.gatewayUrl, '/admin/users', token);
      expect(r.status).toBe(401);
      expect(r.challenge).toMatch(/error="insufficient_user_authentication"/);
      expect(r.challenge).toContain('max_age="120"');
      // The same token is MFA enough for the route without a freshness rule.
      expect((await callGateway(demo.gatewayUrl, '/api/hello', token)).status).toBe(200);
    });
  });

  it('logging out at the identity provider ends the gateway session: the same token is refused on the next request', async () => {
    await withContext(async (page) => {
      await page.goto(`${demo.idp.issuer}/app/login`);
      await typePassword(page, 'alice', 'wonderland');
      clock.nextStep();
      await page.locator('#code').fill(await totpCode(DEMO_TOTP_SECRET, clock.now()));
      await page.locator('#otp-submit').click();
      const token = await readToken(page);
      expect(jwtPayload(token)['sid']).toEqual(expect.any(String));
      // Twice: the second answer comes from the gateway's token cache.
      expect((await callGateway(demo.gatewayUrl, '/api/hello', token)).status).toBe(200);
      expect((await callGateway(demo.gatewayUrl, '/api/hello', token)).status).toBe(200);

      // RP-initiated logout in the browser: the IdP asks, the user confirms, and the IdP
      // sends the back-channel logout to the gateway before it shows the page.
      await page.locator('#logout').click();
      await page.locator('#logout-yes').click();
      await page.locator('#logged-out').waitFor();

      const refused = await callGateway(demo.gatewayUrl, '/api/hello', token);
      expect(refused.status).toBe(401);
      expect(refused.challenge).toBe('Bearer realm="mfa-gateway", error="invalid_token", error_description="token revoked"');
      // The browser's session is gone too: a new login asks for the password again.
      await page.goto(`${demo.idp.issuer}/app/login`);
      await page.locator('#login-form').waitFor();
    });
  });
});
