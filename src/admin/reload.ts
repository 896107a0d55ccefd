import type { AdminRoute } from '../server/admin.js';
import type { ReloadResult } from '../reload.js';

/**
 * `POST /reload` on the admin listener (README, "Reload"): reloads the config file the
 * gateway was started with, as SIGHUP does, and answers with the outcome: 200 and what
 * changed, or 422 and every problem (the running config stays). It changes what the
 * gateway lets through, so it needs the admin token whenever one is configured.
 */
export function reloadRoute(reload: (trigger: string) => Promise<ReloadResult>): AdminRoute {
  return {
    method: 'post',
    path: '/reload',
    mutates: true,
    async handle() {
      const r = await reload('POST /reload');
      if (r.ok) return { status: 200, body: { status: 'reloaded', config: r.file, changes: r.changes } };
      return {
        status: 422,
        body: { error: 'reload_refused', error_description: 'The config was not reloaded; the running config stays.', config: r.file, problems: r.problems },
      };
    },
  };
}
