/**
 * The scenario table. Each scenario is one load run against the bench upstream directly
 * (`target: 'upstream'`), the floor proxy in front of it (`target: 'floor'`,
 * bench/floor.js: uWebSockets.js → undici and nothing else) or the gateway.
 *
 * - `token`: which bearer token each request carries (bench/lib/measure.js requestFor)
 * - `expect`: '2xx', or the one status every answer must have (e.g. 401)
 * - `baseline`: the straight-to-upstream run of the same request, for the × direct ratio
 * - `vsNone`: the × none ratio is meaningful (same small GET as `none`, plus auth)
 * - `floor`: the floor scenario whose CPU per request `× floor CPU` divides by
 *   (default `floor` for gateway scenarios; null: none fits)
 * - `pairedWith`: scenarios measured interleaved with this one, in the same seconds
 * - `rate`: open loop at a fixed rate (bench/lib/load.js drivePaced), set by run.js
 * - `watchPauses`: note the gateway's major GCs, longest event-loop delay and TCP
 *   retransmissions over the run (run.js notePauses): for rows whose budget is latency
 * - `conn`: which connection count applies: 'main' (--connections), 'body' (--body-connections)
 * - `target: 'gatewayRedis'`: a second gateway, the same config with `state.store: redis`
 *   (processes.js redisExtra), against the bench's own redis-server
 * - `target: 'gatewayThreads'`: a second gateway, the same config with `server.threads: 2`
 *   (processes.js threadsExtra), unpinned: every other gateway runs `server.threads: 1`
 * - `target: 'haproxy'`: HAProxy (Debian's 2.6) as a peer, pinned like the gateway,
 *   verifying the RS256 token of every request with `jwt_verify` and no cache
 *   (processes.js haproxyConfig says what it checks and what it does not)
 */
/** The request of upload-1m and its baseline and floor: a 1 MiB POST with the cached token. */
const UPLOAD_1M = { method: 'POST', path: '/api/upload', body: 'upload', token: 'cached', expect: '2xx', conn: 'body', baseline: 'direct-upload-1m' };

/** `cached`'s request sent to a second gateway, in the same seconds as `cached` on the first (ABBA slices). */
const CACHED_ON_A_SECOND_GATEWAY = { path: '/api/hello', token: 'cached', pairedWith: ['cached'], expect: '2xx', conn: 'main', baseline: 'direct' };

// Table order is run order: `cached` runs right after `none`, so that the ratio the
// budgets hold compares two runs a few seconds apart (this machine's speed drifts).
export const SCENARIOS = [
  {
    name: 'direct',
    target: 'upstream',
    path: '/api/hello',
    // The same request bytes as `none` and `cached` (see `none`).
    token: 'cached',
    expect: '2xx',
    conn: 'main',
    what: 'autocannon straight at the upstream: the ceiling of this machine, and the denominator of every × direct ratio',
  },
  {
    name: 'direct-upload-1m',
    target: 'upstream',
    method: 'POST',
    path: '/api/upload',
    body: 'upload',
    expect: '2xx',
    conn: 'body',
    what: 'baseline of upload-1m: 1 MiB POSTs straight at the upstream',
  },
  {
    name: 'direct-download-1m',
    target: 'upstream',
    path: '/api/download-1m',
    expect: '2xx',
    conn: 'body',
    what: 'baseline of download-1m: 1 MiB answers straight from the upstream',
  },
  {
    name: 'direct-slow',
    target: 'upstream',
    path: '/api/slow',
    expect: '2xx',
    conn: 'main',
    what: 'baseline of slow-upstream: the upstream answers after 50 ms',
  },
  {
    name: 'floor',
    target: 'floor',
    path: '/api/hello',
    // The very request `cached` sends: same path length, same 1.4 KB Authorization header.
    token: 'cached',
    expect: '2xx',
    conn: 'main',
    baseline: 'direct',
    what: 'the bare uWebSockets.js → undici Pool.dispatch proxy (bench/floor.js), pinned like the gateway, sent the request cached sends: the least a proxy on this stack costs; every × floor CPU divides by it',
  },
  {
    name: 'floor-download-64k',
    target: 'floor',
    path: '/api/download-64k',
    token: 'cached',
    expect: '2xx',
    conn: 'main',
    what: 'the floor proxy with 64 KiB answers: the floor of download-64k',
  },
  {
    name: 'floor-download-1m',
    target: 'floor',
    path: '/api/download-1m',
    token: 'cached',
    expect: '2xx',
    conn: 'body',
    baseline: 'direct-download-1m',
    what: 'the floor proxy with 1 MiB answers (tryEnd/onWritable backpressure): the floor of download-1m',
  },
  {
    ...UPLOAD_1M,
    name: 'floor-upload-1m',
    target: 'floor',
    what: 'the floor proxy with 1 MiB request bodies streamed through: the floor of upload-1m',
  },
  {
    name: 'haproxy',
    target: 'haproxy',
    path: '/api/hello',
    // The very request `cached` sends; `cached` is also measured interleaved with it.
    token: 'cached',
    expect: '2xx',
    conn: 'main',
    baseline: 'direct',
    floor: 'floor',
    what: 'HAProxy 2.6 pinned like the gateway (one thread), verifying the RS256 token of every request with jwt_verify (alg, iss, aud, exp, signature; no cache, no MFA, no roles), sent the request cached sends: the peer of issue 12',
  },
  {
    name: 'haproxy-10k',
    target: 'haproxy',
    path: '/api/hello',
    // The tokens `warm-10k` sends, in the same order; `warm-10k` is also measured interleaved with it.
    token: 'warm',
    expect: '2xx',
    conn: 'main',
    baseline: 'direct',
    floor: 'floor',
    what: 'HAProxy as in haproxy, sent the 10,000 distinct tokens warm-10k sends (each request a full verification, as every request is): the peer of issue 13',
  },
  {
    name: 'none',
    target: 'gateway',
    path: '/public/hello',
    // The very request `cached` sends, Authorization header included: the route never
    // looks at it and forwards it as it is, so `cached` ÷ `none` is the cost of the auth
    // work alone (extraction, cache hit, policy, identity headers, audit fields), not of
    // carrying 1.4 KB more each way. `none-bare` shows what carrying it costs.
    token: 'cached',
    expect: '2xx',
    conn: 'main',
    baseline: 'direct',
    what: 'an `auth: none` route, sent the same request as `cached`: the cost of the proxy alone (uWS front end, routing, undici, audit line)',
  },
  {
    name: 'cached',
    target: 'gateway',
    path: '/api/hello',
    token: 'cached',
    // Measured in slices interleaved with `none`, `floor` and `haproxy` (bench/lib/measure.js):
    // the ratios this product promises are held against the same seconds of the same machine.
    pairedWith: ['none', 'floor', 'haproxy'],
    expect: '2xx',
    conn: 'main',
    baseline: 'direct',
    vsNone: true,
    what: 'one valid MFA token on an `auth: mfa` route with a role and a scope: the cache-hit path, what nearly every real request takes',
  },
  {
    name: 'cached-redis',
    target: 'gatewayRedis',
    ...CACHED_ON_A_SECOND_GATEWAY,
    floor: 'floor',
    what: 'the cached request against a second gateway with state.store: redis (the bench\'s own redis-server) and a never-reached per-subject limit, so every request is counted and synced: what sharing state costs the hot path, interleaved with cached',
  },
  {
    // The row notes its ratio to `cached` (server.threads: 1) in the same seconds.
    name: 'cached-threads2',
    target: 'gatewayThreads',
    ...CACHED_ON_A_SECOND_GATEWAY,
    floor: null,
    what: 'the cached request against a second gateway with server.threads: 2, interleaved with cached (server.threads: 1): what the front end on every core gains. Unpinned: on a two-core machine its threads share the cores with the upstream and the load generator',
  },
  {
    name: 'none-bare',
    target: 'gateway',
    path: '/public/hello',
    expect: '2xx',
    conn: 'main',
    baseline: 'direct',
    what: 'an `auth: none` route, no Authorization header: next to `none`, what forwarding a 1.4 KB token costs',
  },
  {
    name: 'warm-10k',
    target: 'gateway',
    path: '/api/hello',
    token: 'warm',
    // Interleaved with HAProxy sent the same tokens (issue 13's "10,000 distinct tokens").
    pairedWith: ['haproxy-10k'],
    expect: '2xx',
    conn: 'main',
    baseline: 'direct',
    vsNone: true,
    what: '10,000 distinct valid tokens, all verified once before the run: a cache that holds many users; interleaved with haproxy-10k',
  },
  {
    name: 'cold-rs256',
    target: 'gateway',
    path: '/api/hello',
    token: 'cold',
    alg: 'RS256',
    expect: '2xx',
    conn: 'main',
    baseline: 'direct',
    vsNone: true,
    what: 'every request a never-seen RS256 token: signature verification in the worker pool',
  },
  {
    name: 'cold-es256',
    target: 'gateway',
    path: '/api/hello',
    token: 'cold',
    alg: 'ES256',
    expect: '2xx',
    conn: 'main',
    baseline: 'direct',
    vsNone: true,
    what: 'every request a never-seen ES256 token',
  },
  {
    name: 'cold-eddsa',
    target: 'gateway',
    path: '/api/hello',
    token: 'cold',
    alg: 'EdDSA',
    expect: '2xx',
    conn: 'main',
    baseline: 'direct',
    vsNone: true,
    what: 'every request a never-seen EdDSA (Ed25519) token',
  },
  {
    name: 'invalid',
    target: 'gateway',
    path: '/api/hello',
    token: 'invalid',
    expect: 401,
    conn: 'main',
    baseline: 'direct',
    vsNone: true,
    what: 'a token with a bad signature, repeated: after the first check it is answered from the negative cache (401)',
  },
  {
    name: 'spray',
    target: 'gateway',
    path: '/api/hello',
    token: 'cached',
    spray: true,
    expect: '2xx',
    conn: 'main',
    baseline: 'direct',
    vsNone: true,
    what: 'the cached run again while other connections send never-seen garbage tokens (real header and kid, random signature: each costs a verification); the row shows the cached traffic',
  },
  {
    ...UPLOAD_1M,
    name: 'upload-1m',
    target: 'gateway',
    floor: 'floor-upload-1m',
    what: '1 MiB request bodies streamed through to the upstream, with a cached token',
  },
  {
    name: 'download-1m',
    target: 'gateway',
    path: '/api/download-1m',
    token: 'cached',
    expect: '2xx',
    conn: 'body',
    baseline: 'direct-download-1m',
    floor: 'floor-download-1m',
    what: '1 MiB response bodies streamed back to the client, with a cached token',
  },
  {
    name: 'download-64k',
    target: 'gateway',
    path: '/api/download-64k',
    token: 'cached',
    expect: '2xx',
    conn: 'main',
    floor: 'floor-download-64k',
    pairedWith: ['floor-download-64k'],
    what: '64 KiB answers with a cached token, interleaved with floor-download-64k: what the gateway adds to a mid-sized answer',
  },
  {
    name: 'slow-upstream',
    target: 'gateway',
    path: '/api/slow',
    token: 'cached',
    expect: '2xx',
    conn: 'main',
    baseline: 'direct-slow',
    // Interleaved with its baseline: run late in the table, it measured p50 +3.8 and
    // +6.6 ms over a direct-slow taken in the first minute, +0.3 ms back to back. It has
    // still been slower late in a full run (bench/budgets.yaml), so the note says
    // whether the gateway paused meanwhile.
    pairedWith: ['direct-slow'],
    watchPauses: true,
    what: 'the upstream takes 50 ms: the gateway must add no queueing (throughput = connections / 50 ms, latency ≈ 50 ms); interleaved with direct-slow',
  },
  {
    name: 'step-up-deny',
    target: 'gateway',
    path: '/api/hello',
    token: 'stepup',
    expect: 401,
    conn: 'main',
    baseline: 'direct',
    vsNone: true,
    what: 'a valid but password-only token (amr: [pwd]): refused with the RFC 9470 step-up challenge (401)',
  },
  // Open loop, after `cached`: the rate is half of what cached reached in the same run.
  {
    name: 'fixed-rate',
    target: 'gateway',
    path: '/api/hello',
    token: 'cached',
    rate: true,
    watchPauses: true,
    expect: '2xx',
    conn: 'main',
    floor: 'floor-fixed-rate',
    pairedWith: ['floor-fixed-rate'],
    what: 'the cached request at a fixed rate (open loop, half of cached\'s req/s unless --rate): the latency a loaded but unsaturated gateway adds, interleaved with floor-fixed-rate',
  },
  {
    name: 'floor-fixed-rate',
    target: 'floor',
    path: '/api/hello',
    token: 'cached',
    rate: true,
    expect: '2xx',
    conn: 'main',
    what: 'the floor proxy at the rate fixed-rate offers: the latency of the bare stack at that load',
  },
];

/** The floor scenario a scenario's `× floor CPU` divides by, or null. */
export function floorOf(s) {
  if (s.floor !== undefined) return s.floor;
  return s.target === 'gateway' ? 'floor' : null;
}

/** Names that select several scenarios. */
export const GROUPS = {
  all: SCENARIOS.map((s) => s.name),
  cold: ['cold-rs256', 'cold-es256', 'cold-eddsa'],
  baselines: ['direct', 'direct-upload-1m', 'direct-download-1m', 'direct-slow'],
  floors: SCENARIOS.filter((s) => s.target === 'floor').map((s) => s.name),
  peers: SCENARIOS.filter((s) => s.target === 'haproxy').map((s) => s.name),
};

export const byName = new Map(SCENARIOS.map((s) => [s.name, s]));

/**
 * Expands names and groups into scenarios in table order, adding what the ratios and
 * budgets need: each scenario's baseline, floor and partners, `direct` and `none` for
 * gateway scenarios, `cached` for the fixed-rate ones (it sets their rate), and every
 * scenario a budget compares with (`extraDeps(name)`).
 * @param {string[]} names
 * @param {{ withDeps?: boolean, extraDeps?: (name: string) => string[] }} [options]
 */
export function select(names, options = {}) {
  const wanted = new Set();
  for (const n of names.length ? names : ['all']) {
    const group = GROUPS[n];
    if (group) group.forEach((g) => wanted.add(g));
    else if (byName.has(n)) wanted.add(n);
    else throw new Error(`unknown scenario "${n}"; one of: ${[...Object.keys(GROUPS), ...byName.keys()].join(', ')}`);
  }
  if (options.withDeps !== false) {
    const queue = [...wanted];
    while (queue.length) {
      const s = byName.get(queue.pop());
      const deps = [s.baseline, floorOf(s), ...(s.pairedWith ?? []), ...(options.extraDeps?.(s.name) ?? [])].filter(Boolean);
      if (s.target === 'gateway' || s.target === 'gatewayRedis' || s.target === 'gatewayThreads') deps.push('direct', 'none');
      if (s.rate) deps.push('cached');
      for (const d of deps) {
        if (!wanted.has(d) && byName.has(d)) {
          wanted.add(d);
          queue.push(d);
        }
      }
    }
  }
  return SCENARIOS.filter((s) => wanted.has(s.name));
}
