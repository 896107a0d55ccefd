/**
 * Concurrent misses for one token share one verification (single flight): the first
 * starts it, the others join its promise, and the entry goes when it settles (unless a
 * reload cleared the map and a newer verification took the token's place meanwhile).
 */
export function singleFlight<T>(pending: Map<string, Promise<T>>, token: string, start: () => Promise<T>): Promise<T> {
  const joined = pending.get(token);
  if (joined !== undefined) return joined;
  const started: Promise<T> = start().finally(() => {
    if (pending.get(token) === started) pending.delete(token);
  });
  pending.set(token, started);
  return started;
}
