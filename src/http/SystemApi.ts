/**
 * What operators and their tools call: the health check and the metrics.
 * `/metrics` is served by `PrometheusMetrics.layerHttp` (Server.ts), not by
 * HttpApi, so it is described here for the document only (`SystemApi`);
 * HttpApi serves `SystemServedApi`.
 */
import { Schema } from "effect"
import { HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "effect/http-api"
import { documented, example } from "./Documented.ts"
import { ServiceUnavailable } from "./Problems.ts"

const Health = Schema.Struct({ status: Schema.Literal("ok") })

const health = HttpApiEndpoint.get("health", "/health", {
  success: Health,
  error: ServiceUnavailable
}).annotateMerge(
  documented({
    summary: "Check that the service can serve",
    description:
      "200 once start-up (including the recovery of unsettled messages) has finished and the database answers; 503 while it does not. For load balancers, container health checks and readiness probes.",
    responses: {
      200: example(Health, "Ready", { status: "ok" }),
      503: example(
        ServiceUnavailable,
        "Database unavailable",
        new ServiceUnavailable({ detail: "database did not answer in time" })
      )
    }
  })
)

/** The content type PrometheusMetrics answers with: the text exposition format 0.0.4. */
const prometheusText = "text/plain; version=0.0.4; charset=utf-8"

const MetricsText = Schema.String.pipe(HttpApiSchema.asText({ contentType: prometheusText })).annotate({
  description: "Prometheus text exposition format"
})

const metrics = HttpApiEndpoint.get("metrics", "/metrics", {
  success: MetricsText
}).annotateMerge(
  documented({
    summary: "Read the metrics",
    description:
      "Counters and gauges in the Prometheus text format: HTTP responses by method and status, submissions by outcome, the fingerprint cache's hits and misses, and the queue's sizes and totals. Values are read at scrape time.",
    responses: {
      200: example(
        MetricsText,
        "After one submission and its duplicate",
        [
          "# HELP formula_submissions_total Submissions by outcome (created, duplicate, invalid, queue_full, unavailable)",
          "# TYPE formula_submissions_total counter",
          'formula_submissions_total{outcome="created"} 1',
          'formula_submissions_total{outcome="duplicate"} 1',
          'formula_submissions_total{outcome="invalid"} 0',
          'formula_submissions_total{outcome="queue_full"} 0',
          'formula_submissions_total{outcome="unavailable"} 0',
          "# HELP fingerprint_cache_hits_total Duplicates answered from memory",
          "# TYPE fingerprint_cache_hits_total counter",
          "fingerprint_cache_hits_total 1",
          "# HELP queue_messages_ready Messages waiting for a consumer",
          "# TYPE queue_messages_ready gauge",
          'queue_messages_ready{queue="messages"} 1',
          "# HELP queue_published_total Messages committed",
          "# TYPE queue_published_total counter",
          'queue_published_total{queue="messages"} 1',
          "# HELP http_requests_total HTTP responses by method and status",
          "# TYPE http_requests_total counter",
          'http_requests_total{method="POST",status="201"} 1',
          'http_requests_total{method="POST",status="409"} 1',
          ""
        ].join("\n")
      )
    }
  })
)

const systemTag = OpenApi.annotations({
  title: "System",
  description: "For operators: whether the service can serve, and what it has been doing."
})

/** The system endpoints, as documented. */
export class SystemApi extends HttpApiGroup.make("system", { topLevel: true })
  .add(health, metrics)
  .annotateMerge(systemTag) {}

/** The system endpoints HttpApi serves: `/metrics` is PrometheusMetrics' own route. */
export class SystemServedApi extends HttpApiGroup.make("system", { topLevel: true })
  .add(health)
  .annotateMerge(systemTag) {}
