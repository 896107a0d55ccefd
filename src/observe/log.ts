import pino, { type Logger } from 'pino';

export type { Logger };

/**
 * The gateway's operational logger (JSON lines on stdout). Credentials are redacted
 * wherever they could appear in a logged object; code never logs a token on purpose.
 */
export function createLogger(options: { level?: string; destination?: pino.DestinationStream } = {}): Logger {
  return pino(
    {
      level: options.level ?? process.env['MFA_GATEWAY_LOG_LEVEL'] ?? 'info',
      base: { service: 'mfa-gateway' },
      redact: {
        paths: ['authorization', 'cookie', 'proxy-authorization', '*.authorization', '*.cookie', '*["proxy-authorization"]', 'token', '*.token'],
        censor: '[redacted]',
      },
    },
    options.destination ?? pino.destination({ dest: 1, sync: false }),
  );
}
