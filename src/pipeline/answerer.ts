import type { Answer } from './answer.js';

/**
 * What the stages, forward() up to its dispatch, and the boundary need of whoever
 * answers a request: the uWS Responder (src/server/responder.ts, which also streams the
 * upstream's answer), or `explain`'s recorder (src/explain/recorder.ts), which keeps the
 * answer instead of writing it.
 */
export interface Answerer {
  /** The request has its answer (or its client went away): nothing more may be written. */
  readonly done: boolean;
  /** The status line went out (a failure now can only close the connection). */
  readonly started: boolean;
  /** Answers with a gateway refusal or error (README "What the gateway answers"); once. */
  answer(a: Answer): void;
  /** Ends a started answer by closing the connection. */
  close(): void;
}
