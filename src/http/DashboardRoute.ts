/**
 * `GET /dashboard`: one HTML page (dashboard.html, next to this file) with its
 * styles and script inline; it loads nothing from another host and calls only
 * this service's API (same origin). Served by a plain route: it is a page, not
 * an API answer; documented in the HttpApi all the same (StatsApi.ts).
 */
import { Effect } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { readFileSync } from "node:fs"

const page = readFileSync(new URL("./dashboard.html", import.meta.url), "utf8")

export const DashboardRoute = HttpRouter.add(
  "GET",
  "/dashboard",
  Effect.sync(() =>
    HttpServerResponse.text(page, {
      contentType: "text/html; charset=utf-8",
      headers: {
        // Nothing but this origin, and inline code: the page's promise, enforced by the browser.
        "content-security-policy":
          "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:; connect-src 'self'",
        "cache-control": "no-cache"
      }
    })
  )
)
