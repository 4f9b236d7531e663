/**
 * Prometheus metrics. Counters are plain numbers bumped on the hot path; labels and text are
 * only built when /metrics is scraped.
 */

type Labels = Record<string, string>;

/** A counter family keyed by its label values. */
class LabeledCounter {
  readonly #values = new Map<string, { labels: Labels; value: number }>();

  inc(labels: Labels, by = 1): void {
    const key = Object.values(labels).join("\u0000");
    const entry = this.#values.get(key);
    if (entry) entry.value += by;
    else this.#values.set(key, { labels, value: by });
  }

  /**
   * An increment of one series for hot paths: its key is built once, not per call. The series is
   * listed from its first increment on, as with `inc`.
   */
  series(labels: Labels): (by?: number) => void {
    const key = Object.values(labels).join("\u0000");
    let entry: { labels: Labels; value: number } | undefined;
    return (by = 1) => {
      entry ??= this.#values.get(key);
      if (entry) entry.value += by;
      else this.#values.set(key, entry = { labels, value: by });
    };
  }

  entries(): Iterable<{ labels: Labels; value: number }> {
    return this.#values.values();
  }
}

/** Publish → deliver latency buckets, in seconds. */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];

class Histogram {
  readonly counts = new Array<number>(LATENCY_BUCKETS.length).fill(0);
  sum = 0;
  count = 0;

  observe(seconds: number): void {
    this.sum += seconds;
    this.count++;
    for (let i = 0; i < LATENCY_BUCKETS.length; i++) {
      if (seconds <= LATENCY_BUCKETS[i]) {
        this.counts[i]++;
        return;
      }
    }
  }
}

/** Gauges read from the node at scrape time. */
export interface GaugeReadings {
  region: string;
  connectionsByApp: Map<string, number>;
  subscriptions: number;
  channels: number;
  busConnected: boolean;
  draining: boolean;
  webhookDeadLetters: number;
}

export class Metrics {
  readonly connectionsOpened = new LabeledCounter();
  readonly connectionsClosed = new LabeledCounter();
  readonly connectionsRefused = new LabeledCounter();
  readonly httpRequests = new LabeledCounter();
  readonly rateLimited = new LabeledCounter();
  /** Connections refused or lost at accept / upgrade (descriptor limit, accept errors). */
  readonly acceptErrors = new LabeledCounter();
  readonly deliveryLatency = new Histogram();
  messagesIn = 0;
  messagesOut = 0;
  bytesOut = 0;
  publishFailures = 0;
  /** Times this node told sockets to reconnect because its bus was lost or missed events. */
  busLosses = 0;
  webhooksSent = 0;
  webhookFailures = 0;
  webhookCopiesGivenUp = 0;

  render(gauges: GaugeReadings): string {
    const out: string[] = [];
    const family = (name: string, type: string, help: string) => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    };
    const line = (name: string, labels: Labels, value: number) => {
      const pairs = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
      out.push(`${name}${pairs.length ? `{${pairs.join(",")}}` : ""} ${value}`);
    };
    const counter = (name: string, help: string, values: LabeledCounter) => {
      family(name, "counter", help);
      for (const { labels, value } of values.entries()) line(name, labels, value);
    };

    family("chorus_connections", "gauge", "Open WebSocket connections on this node.");
    for (const [app, count] of gauges.connectionsByApp) {
      line("chorus_connections", { app, region: gauges.region }, count);
    }
    counter("chorus_connections_opened_total", "Connections established.", this.connectionsOpened);
    counter(
      "chorus_connections_closed_total",
      "Connections closed, by close code.",
      this.connectionsClosed,
    );
    counter(
      "chorus_connections_refused_total",
      "Connections refused at open, by reason.",
      this.connectionsRefused,
    );
    family("chorus_subscriptions", "gauge", "Channel subscriptions of local sockets.");
    line("chorus_subscriptions", {}, gauges.subscriptions);
    family("chorus_channels", "gauge", "Channels with local subscribers.");
    line("chorus_channels", {}, gauges.channels);
    family("chorus_messages_received_total", "counter", "Frames received from sockets.");
    line("chorus_messages_received_total", {}, this.messagesIn);
    family("chorus_messages_sent_total", "counter", "Frames sent to sockets.");
    line("chorus_messages_sent_total", {}, this.messagesOut);
    family("chorus_sent_bytes_total", "counter", "Bytes of frames sent to sockets.");
    line("chorus_sent_bytes_total", {}, this.bytesOut);
    counter(
      "chorus_http_requests_total",
      "HTTP requests by route and status.",
      this.httpRequests,
    );
    counter(
      "chorus_rate_limited_total",
      "Requests or frames refused by a rate limit.",
      this.rateLimited,
    );
    counter(
      "chorus_accept_errors_total",
      "Connections refused or lost at accept, by reason (fd_limit, accept).",
      this.acceptErrors,
    );

    const h = this.deliveryLatency;
    family(
      "chorus_delivery_latency_seconds",
      "histogram",
      "Time from publish on one node to delivery on this node.",
    );
    let cumulative = 0;
    LATENCY_BUCKETS.forEach((le, i) => {
      cumulative += h.counts[i];
      line("chorus_delivery_latency_seconds_bucket", { le: String(le) }, cumulative);
    });
    line("chorus_delivery_latency_seconds_bucket", { le: "+Inf" }, h.count);
    line("chorus_delivery_latency_seconds_sum", {}, h.sum);
    line("chorus_delivery_latency_seconds_count", {}, h.count);

    family("chorus_cluster_bus_connected", "gauge", "1 when the cluster bus (Redis) is connected.");
    line("chorus_cluster_bus_connected", {}, gauges.busConnected ? 1 : 0);
    family("chorus_publish_failures_total", "counter", "Publishes the cluster bus refused.");
    line("chorus_publish_failures_total", {}, this.publishFailures);
    family(
      "chorus_bus_losses_total",
      "counter",
      "Times sockets were told to reconnect: the bus was lost past the grace, or missed events.",
    );
    line("chorus_bus_losses_total", {}, this.busLosses);
    family("chorus_webhooks_sent_total", "counter", "Webhook POSTs answered with 2xx.");
    line("chorus_webhooks_sent_total", {}, this.webhooksSent);
    family(
      "chorus_webhook_failures_total",
      "counter",
      "Webhook POSTs that failed (retried or not).",
    );
    line("chorus_webhook_failures_total", {}, this.webhookFailures);
    family(
      "chorus_webhook_copies_given_up_total",
      "counter",
      "Webhook jobs whose in-memory copy was dropped at the cap (lost if the queue loses them).",
    );
    line("chorus_webhook_copies_given_up_total", {}, this.webhookCopiesGivenUp);
    family(
      "chorus_webhook_dead_letters",
      "gauge",
      "Webhook jobs given up on, in the dead-letter list.",
    );
    line("chorus_webhook_dead_letters", {}, gauges.webhookDeadLetters);
    family("chorus_draining", "gauge", "1 while the node drains before shutdown.");
    line("chorus_draining", {}, gauges.draining ? 1 : 0);
    return out.join("\n") + "\n";
  }
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}
