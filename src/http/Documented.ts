/**
 * What the OpenAPI document (`/openapi.json`, and so `/docs`) says of an
 * endpoint beyond its schemas: a summary, a description, and real example
 * bodies for its request and for every status it answers with a body.
 *
 * Without examples, documentation tools derive them from the schemas: an empty
 * formula name (a 400), a visibility timeout of 0, `attempt: -9007199254740991`.
 * The examples here are written as values of their schema's type and encoded
 * by that schema when the document is built, so one that its schema rejects
 * cannot be shown (test/http/openapi.test.ts also decodes each one from the
 * document, and sends the request examples to a live server).
 */
import { Schema } from "effect"
import { OpenApi } from "effect/http-api"

/** One example body, named for the docs page's example picker. */
export interface Example {
  readonly summary: string
  /** The body as it travels (JSON). */
  readonly encoded: () => unknown
}

/** An example written as a value of `schema`'s type, shown as `schema` encodes it. */
export const example = <Sc extends Schema.ConstraintEncoder<unknown>>(
  schema: Sc,
  summary: string,
  value: Sc["Type"]
): Example => ({
  summary,
  encoded: () => {
    try {
      return Schema.encodeSync(schema)(value)
    } catch (error) {
      throw new Error(`example "${summary}" does not encode with its schema: ${error}`)
    }
  }
})

type Examples = Example | ReadonlyArray<Example>

const asArray = (examples: Examples): ReadonlyArray<Example> =>
  Array.isArray(examples) ? examples : [examples as Example]

const key = (summary: string) =>
  summary
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-|-$/g, "")

/** The OpenAPI `examples` map of a media type. */
const examplesObject = (examples: Examples) =>
  Object.fromEntries(asArray(examples).map((e) => [key(e.summary), { summary: e.summary, value: e.encoded() }]))

/** Sets `examples` on every media type of `content`. */
const setExamples = (content: Record<string, Record<string, unknown>> | undefined, examples: Examples) => {
  for (const mediaType of Object.values(content ?? {})) mediaType["examples"] = examplesObject(examples)
}

const retryAfter = {
  description: "Seconds to wait before retrying",
  schema: { type: "string", examples: ["1"] },
  required: true
}

/** What `documented` says of an endpoint. */
export interface Documentation {
  readonly summary: string
  readonly description?: string
  /** An example value of each path, query or header parameter, as written in a request. */
  readonly parameters?: Readonly<Record<string, string>>
  readonly request?: Examples
  /** By status; each example goes to every media type of that response. */
  readonly responses?: Readonly<Record<number, Examples>>
}

const withExamples = (operation: Record<string, any>, documentation: Documentation) => {
  for (const [name, value] of Object.entries(documentation.parameters ?? {})) {
    const parameter = operation["parameters"].find((parameter: { name: string }) => parameter.name === name)
    if (parameter === undefined) throw new Error(`it has no parameter ${name} to show an example of`)
    // On the schema, where the docs page's request snippets read it (without one an optional header is sent empty).
    parameter.schema = { ...parameter.schema, examples: [value] }
  }
  if (documentation.request !== undefined) {
    if (operation["requestBody"] === undefined) throw new Error("it has no request body to show an example of")
    setExamples(operation["requestBody"].content, documentation.request)
  }
  for (const [status, examples] of Object.entries(documentation.responses ?? {})) {
    const response = operation["responses"][status]
    if (response?.content === undefined) throw new Error(`it has no ${status} body to show an example of`)
    setExamples(response.content, examples)
  }
  // Server.ts adds it to every 503 that does not carry one.
  const unavailable = operation["responses"]["503"]
  if (unavailable !== undefined) unavailable.headers = { ...unavailable.headers, "retry-after": retryAfter }
  return operation
}

/**
 * OpenAPI annotations for an endpoint: `annotateMerge(documented({ … }))`.
 * A parameter or status the endpoint does not have, or an example its
 * schema does not encode, is a mistake in the description: building the
 * document throws, naming the operation and the example.
 */
export const documented = (documentation: Documentation) =>
  OpenApi.annotations({
    summary: documentation.summary,
    description: documentation.description,
    transform: (operation) => {
      try {
        return withExamples(operation, documentation)
      } catch (error) {
        throw new Error(`OpenAPI ${operation["operationId"]}: ${error instanceof Error ? error.message : error}`)
      }
    }
  })
