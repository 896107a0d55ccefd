import { escapeLineBreakers } from './audit.js';
import pino, { type Logger } from 'pino';

export type { Logger };

/**
 * The shape every line of the gateway has, operational and audit alike: pino JSON
 * with the level as its name (`"level":"info"`, not pino's number), an ISO 8601 UTC
 * `time` and a `msg`. Log stores then need one parser and one level mapping for both.
 */
export const LINE_SHAPE = {
  formatters: { level: (label: string) => ({ level: label }) },
  timestamp: pino.stdTimeFunctions.isoTime,
} as const;

/**
 * The gateway's operational logger (JSON lines on stdout). Credentials are redacted
 * wherever they could appear in a logged object; code never logs a token on purpose.
 *
 * `level` is resolved by the caller (the CLI: `--log-level`, else the config's
 * `log.level`, else MFA_GATEWAY_LOG_LEVEL, else info); without one, the environment
 * variable or info.
 *
 * Debug lines (`level: debug`), for whoever adds more:
 * - `key set fetched` {issuer, url | file, status, keys}: every key-set load (src/authn/jwks.ts);
 * - `token cache evictions` {cache, evicted: {reason: count}}: at most one per cache every 10 s;
 * - `request refused` {request_id, route, reason, status}: where the pipeline denied a request
 *   (src/gateway.ts, beside the audit entry). Call it as
 *   `if (logger.isLevelEnabled('debug')) logger.debug({ request_id, route, reason, status }, 'request refused')`
 *   so a request pays nothing for it at other levels.
 */
export function createLogger(options: { level?: string; destination?: pino.DestinationStream } = {}): Logger {
  const wanted = options.level ?? process.env['MFA_GATEWAY_LOG_LEVEL'] ?? 'info';
  // pino throws on a level it does not know; a log level must never stop the gateway.
  const level = wanted in pino.levels.values || wanted === 'silent' ? wanted : 'info';
  const logger = pino(
    {
      level,
      base: { service: 'mfa-gateway' },
      ...LINE_SHAPE,
      // A claim or a path in a log field must not split the line for a reader that breaks
      // lines on U+2028, U+2029 or C1 controls (the audit line escapes them the same way).
      hooks: { streamWrite: escapeLineBreakers },
      redact: {
        paths: ['authorization', 'cookie', 'proxy-authorization', '*.authorization', '*.cookie', '*["proxy-authorization"]', 'token', '*.token'],
        censor: '[redacted]',
      },
    },
    options.destination ?? pino.destination({ dest: 1, sync: false }),
  );
  if (level !== wanted) logger.warn({ level: wanted }, 'unknown log level; logging at info');
  return logger;
}
