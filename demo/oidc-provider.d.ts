/**
 * The small part of oidc-provider 9's API the demo identity provider uses.
 * oidc-provider ships no type declarations and @types/oidc-provider is not a
 * dependency, so this file declares just what demo/idp.ts calls.
 */
declare module 'oidc-provider' {
  import type { IncomingMessage, ServerResponse } from 'node:http';

  export interface InteractionPrompt {
    readonly name: 'login' | 'consent' | string;
    readonly reasons: readonly string[];
    readonly details: Record<string, unknown>;
  }

  export interface Interaction {
    readonly uid: string;
    readonly prompt: InteractionPrompt;
    readonly params: Record<string, unknown>;
    readonly session?: { readonly accountId: string; readonly acr?: string; readonly amr?: readonly string[] };
    /** Seconds since the epoch. */
    readonly exp: number;
    readonly returnTo: string;
    readonly grantId?: string;
  }

  export interface LoginResult {
    readonly accountId: string;
    readonly acr?: string;
    readonly amr?: readonly string[];
    /** auth_time, seconds since the epoch (default: now). */
    readonly ts?: number;
    /** false: the session cookie is a browser-session cookie. */
    readonly remember?: boolean;
  }

  export interface InteractionResults {
    readonly login?: LoginResult;
    readonly consent?: { readonly grantId?: string };
    readonly error?: string;
    readonly error_description?: string;
  }

  export interface Grant {
    readonly jti: string;
    addOIDCScope(scope: string): void;
    addResourceScope(resource: string, scope: string): void;
    save(): Promise<string>;
  }

  export interface GrantClass {
    new (properties: { accountId: string; clientId: string }): Grant;
    find(id: string): Promise<Grant | undefined>;
  }

  /** A token model as passed to `extraTokenClaims` (only the fields the demo reads). */
  export interface TokenModel {
    readonly kind: string;
    readonly accountId?: string;
    readonly aud?: string | readonly string[];
    /** The OP session of the login the token was issued in (Back-Channel Logout 1.0 §2.4). */
    readonly sid?: string;
  }

  /** Grant sources kept on the context at the token endpoint (authorization code, refresh token). */
  export interface GrantSource {
    readonly accountId?: string;
    readonly acr?: string;
    readonly amr?: readonly string[];
    readonly authTime?: number;
  }

  export interface OIDCContext {
    readonly params: Record<string, string | undefined>;
    readonly entities: { readonly AuthorizationCode?: GrantSource; readonly RefreshToken?: GrantSource };
    readonly session: { readonly accountId?: string; readonly acr?: string; grantIdFor(clientId: string): string | undefined };
    readonly client: { readonly clientId: string };
    readonly result?: InteractionResults;
    readonly prompts: ReadonlySet<string>;
    readonly provider: Provider;
  }

  export interface KoaContext {
    readonly oidc: OIDCContext;
  }

  export interface Account {
    readonly accountId: string;
    claims(use: string, scope: string): Promise<Record<string, unknown>> | Record<string, unknown>;
  }

  export type CheckResult = boolean;

  export class Check {
    constructor(name: string, description: string, error: string, check: (ctx: KoaContext) => CheckResult | Promise<CheckResult>);
    static readonly REQUEST_PROMPT: true;
    static readonly NO_NEED_TO_PROMPT: false;
  }

  export interface Prompt {
    readonly name: string;
    readonly checks: Check[];
  }

  export interface Policy extends Array<Prompt> {
    get(name: string): Prompt | undefined;
  }

  export const interactionPolicy: { base(): Policy; Check: typeof Check };

  export class OIDCProviderError extends Error {
    readonly error: string;
    readonly error_description?: string;
  }

  export const errors: {
    readonly InvalidTarget: new (description?: string) => OIDCProviderError;
    readonly OIDCProviderError: typeof OIDCProviderError;
  };

  /** A registered client, as `Client.find` gives it (only what the demo calls). */
  export interface ClientModel {
    readonly clientId: string;
    /** Sends a logout token to the client's backchannel_logout_uri (Back-Channel Logout 1.0 §2.5). */
    backchannelLogout(sub: string, sid: string): Promise<void>;
  }

  export class Provider {
    constructor(issuer: string, configuration: Record<string, unknown>);
    readonly issuer: string;
    readonly Grant: GrantClass;
    readonly Client: { find(id: string): Promise<ClientModel | undefined> };
    proxy: boolean;
    callback(): (req: IncomingMessage, res: ServerResponse) => void;
    interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<Interaction>;
    interactionFinished(
      req: IncomingMessage,
      res: ServerResponse,
      result: InteractionResults,
      options?: { mergeWithLastSubmission?: boolean },
    ): Promise<void>;
    on(event: string, listener: (...args: unknown[]) => void): this;
  }

  export default Provider;
}
