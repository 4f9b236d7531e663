/** Counts every HTTP request by endpoint pattern and status for /metrics. */
import type { Metrics } from "../../metrics.ts";

/**
 * `count(route, status)`: `route` is the endpoint's pattern with the prefix (not the raw path),
 * or "unmatched"; one series per endpoint, whether the checks refused the request or the
 * handler answered it. Each pattern and status gets its increment once (there are a few dozen),
 * so a request builds no labels object or key.
 */
export function requestCounter(metrics: Metrics): (route: string, status: number) => void {
  const series = new Map<string, Map<number, () => void>>();
  return (route, status) => {
    let byStatus = series.get(route);
    if (!byStatus) series.set(route, byStatus = new Map());
    let inc = byStatus.get(status);
    if (!inc) {
      inc = metrics.httpRequests.series({ route, status: String(status) });
      byStatus.set(status, inc);
    }
    inc();
  };
}
