/** Counts every HTTP request by endpoint pattern and status for /metrics. */
import type { Metrics } from "../../metrics.ts";

/**
 * `count(route, status)`: `route` is the endpoint's pattern with the prefix (not the raw path),
 * or "unmatched"; one series per endpoint, whether the checks refused the request or the
 * handler answered it.
 */
export function requestCounter(metrics: Metrics): (route: string, status: number) => void {
  return (route, status) => metrics.httpRequests.inc({ route, status: String(status) });
}
