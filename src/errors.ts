/**
 * An error with a stable code, for failures inside the gateway itself (config, start-up,
 * listeners), as undici's `UND_ERR_*` codes are: callers branch on `code`. Answers to
 * requests are not errors of this kind: they are the reasons of src/reasons.ts.
 */
export class GatewayError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'GatewayError';
    this.code = code;
  }
}
