/**
 * The HTTP contract for formulas (DESIGN.md "HTTP contract"), row by row, over
 * a real socket on every test database. Each test names the invariant it
 * protects; all of them use make-ups of their own (`uniqueTag`).
 */
import { assert, describe, layer } from "@effect/vitest"
import { Effect, Schema } from "effect"
import { randomUUID } from "node:crypto"
import { testDatabases } from "../support/Databases.ts"
import {
  assertCreated,
  assertDuplicateOf,
  assertInvalid,
  assertProblem,
  type FormulaInput,
  jsonText,
  postFormula,
  postText,
  raw,
  singleMaterial,
  summerBreeze,
  summerBreezeSpellings,
  uniqueTag
} from "../support/Formulas.ts"
import { type JsonResponse, request, send, testServer } from "../support/TestServer.ts"

const MiB = 1024 * 1024

const paths = (errors: ReadonlyArray<{ path: string }>) => errors.map((error) => error.path)

const messageAt = (errors: ReadonlyArray<{ path: string; message: string }>, path: string) =>
  errors
    .filter((error) => error.path === path)
    .map((error) => error.message)
    .join(" | ")

/** A valid body padded with trailing whitespace (still valid JSON) to exactly `size` bytes. */
const paddedTo = (body: FormulaInput, size: number): Uint8Array<ArrayBuffer> => {
  const bytes = new Uint8Array(size).fill(0x20)
  bytes.set(new TextEncoder().encode(jsonText(body)))
  return bytes
}

/** `bytes` as a stream of 64 KiB chunks: fetch sends it with `Transfer-Encoding: chunked`, no length. */
const chunked = (bytes: Uint8Array): ReadableStream<Uint8Array> => {
  let offset = 0
  return new ReadableStream({
    pull(controller) {
      if (offset >= bytes.length) return controller.close()
      controller.enqueue(bytes.subarray(offset, offset + 64 * 1024))
      offset += 64 * 1024
    }
  })
}

const postChunked = (bytes: Uint8Array) =>
  send("/formulas", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: chunked(bytes),
    duplex: "half"
  })

/** Follows `nextCursor` from the first page to the last; returns every id in order. */
const walkPages = (limit: number) =>
  Effect.gen(function* () {
    const ids: Array<string> = []
    let cursor: string | null = null
    for (let pages = 0; pages < 10_000; pages++) {
      const query: string = cursor === null ? "" : `&cursor=${encodeURIComponent(cursor)}`
      const page: JsonResponse = yield* request("GET", `/formulas?limit=${limit}${query}`)
      assert.strictEqual(page.status, 200, page.text)
      assert.isAtMost(page.json.items.length, limit)
      if (pages > 0) assert.isAbove(page.json.items.length, 0, "a cursor never leads to an empty page")
      ids.push(...page.json.items.map((item: { id: string }) => item.id))
      cursor = page.json.nextCursor
      if (cursor === null) return ids
      assert.isString(cursor)
      assert.strictEqual(page.json.items.length, limit, "a page followed by another is full")
    }
    return assert.fail("pagination did not end")
  })

// Junk a client could send: JSON values of any shape, formula-shaped bodies with junk fields, raw bytes.
const JunkJson = Schema.Struct({ kind: Schema.Literal("json"), value: Schema.Json })
const JunkFormula = Schema.Struct({
  kind: Schema.Literal("formula"),
  value: Schema.Struct({
    name: Schema.Union([Schema.String, Schema.Json]),
    materials: Schema.Array(
      Schema.Struct({
        name: Schema.Union([Schema.String, Schema.Json]),
        concentration: Schema.Union([Schema.Number, Schema.String, Schema.Json])
      })
    )
  })
})
const JunkBytes = Schema.Struct({ kind: Schema.Literal("bytes"), value: Schema.Uint8Array })
const Junk = Schema.Union([JunkJson, JunkFormula, JunkBytes])

// Hand-written bodies the generators rarely reach: huge and tiny numbers, deep nesting, odd Unicode.
const nastyBodies: ReadonlyArray<string> = [
  "[".repeat(100_000) + "]".repeat(100_000),
  '{"a":'.repeat(50_000) + "1" + "}".repeat(50_000),
  `{"name":"x","materials":${"[".repeat(20_000)}${"]".repeat(20_000)}}`,
  '{"name":"x","materials":[{"name":"m","concentration":1e400}]}',
  '{"name":"x","materials":[{"name":"m","concentration":-1e400}]}',
  '{"name":"x","materials":[{"name":"m","concentration":1e-400}]}',
  '{"name":"x","materials":[{"name":"m","concentration":1e999999999999}]}',
  '{"name":"x","materials":[{"name":"m","concentration":"1e2"}]}',
  '{"name":"x","materials":[{"name":"m","concentration":123456789012345678901234567890}]}',
  `{"name":"x","materials":[{"name":"m","concentration":"${"9".repeat(100_000)}"}]}`,
  `{"name":"x","materials":[{"name":"m","concentration":0.${"0".repeat(100_000)}1}]}`,
  '{"name":"\\u0000","materials":[{"name":"\\u0000","concentration":1}]}',
  '{"name":"\\ud800","materials":[{"name":"\\udc00x","concentration":1}]}',
  '{"name":"x","materials":[{"name":"\\u200b\\u00ad","concentration":1}]}',
  '{"name":"x","materials":[{"name":"\\ufdd0\\uffff","concentration":1}]}',
  '{"__proto__":{"name":"x"},"constructor":1,"materials":[{"__proto__":[],"name":"m","concentration":1}]}',
  '{"name":"x","name":"y","materials":[],"materials":{"length":3}}',
  `{"name":"x","materials":${JSON.stringify(Array.from({ length: 5000 }, () => ({ name: "same", concentration: 0.000001 })))}}`,
  `{"name":"${"ﷺ".repeat(200)}","materials":[{"name":"${"ﷺ".repeat(200)}","concentration":0.000001}]}`,
  '"just a string"',
  "12",
  "true",
  "null",
  "\ufeff{}",
  "{} {}",
  '{"name":"x"',
  "NaN"
]

for (const database of testDatabases) {
  describe(`formulas over HTTP on ${database.name}`, () => {
    layer(testServer(database.layer()), { excludeTestServices: true })((it) => {
      // ---- POST /formulas: new make-up -------------------------------------------------------------

      it.effect(
        "POST of a new make-up answers 201 with Location and the stored formula; GET of Location returns it",
        () =>
          Effect.gen(function* () {
            const tag = uniqueTag()
            const response = yield* request("POST", "/formulas", { body: summerBreeze(tag) })
            const created = assertCreated(response)
            assert.strictEqual(created.name, `Summer Breeze ${tag}`)
            // The seed example, concentrations exact (10.0 is the number 10).
            assert.deepStrictEqual(created.materials, [
              { name: `Bergamot Oil ${tag}`, concentration: 15.5 },
              { name: `Lavender Absolute ${tag}`, concentration: 10 },
              { name: `Sandalwood ${tag}`, concentration: 5.2 }
            ])
            assert.strictEqual(created.message.status, "pending")
            assert.isNull(created.message.deliveredAt)
            assert.notStrictEqual(created.message.id, created.id)

            const fetched = yield* request("GET", response.headers.get("location")!)
            assert.strictEqual(fetched.status, 200)
            assert.deepStrictEqual(fetched.json, created)
          })
      )

      it.effect(
        "concentrations are stored and returned exactly (6 decimal places, decimal strings, total exactly 100)",
        () =>
          Effect.gen(function* () {
            const tag = uniqueTag()
            const response = yield* postFormula({
              name: `Exact ${tag}`,
              materials: [
                { name: `Trace ${tag}`, concentration: raw("0.000001") },
                { name: `Third ${tag}`, concentration: "33.333333" },
                { name: `Rest ${tag}`, concentration: raw("66.666666") }
              ]
            })
            const created = assertCreated(response)
            assert.deepStrictEqual(
              created.materials.map((material: { concentration: number }) => material.concentration),
              [0.000001, 33.333333, 66.666666]
            )
            const fetched = yield* request("GET", `/formulas/${created.id}`)
            assert.deepStrictEqual(fetched.json, created)
          })
      )

      it.effect("a concentration given as a decimal string is accepted and returned as a number", () =>
        Effect.gen(function* () {
          const tag = uniqueTag()
          const created = assertCreated(yield* postFormula(singleMaterial(tag, "15.5")))
          assert.deepStrictEqual(created.materials, [{ name: `Material ${tag}`, concentration: 15.5 }])
        })
      )

      it.effect("boundaries that are valid are accepted: 100 alone, 200-character names, 500 materials", () =>
        Effect.gen(function* () {
          const tag = uniqueTag()
          assertCreated(yield* postFormula(singleMaterial(`${tag}-100`, 100)))
          const longName = `${tag} ${"n".repeat(199 - tag.length)}`
          assert.strictEqual(longName.length, 200)
          const named = assertCreated(
            yield* postFormula({ name: longName, materials: [{ name: longName, concentration: 1 }] })
          )
          assert.strictEqual(named.name, longName)
          const fiveHundred = assertCreated(
            yield* postFormula({
              name: `Five hundred ${tag}`,
              materials: Array.from({ length: 500 }, (_, index) => ({ name: `M${index} ${tag}`, concentration: 0.2 }))
            })
          )
          assert.strictEqual(fiveHundred.materials.length, 500)
        })
      )

      // ---- POST /formulas: known make-up -----------------------------------------------------------

      it.effect("the same make-up in any spelling and under any name is a 409 naming the first formula", () =>
        Effect.gen(function* () {
          const tag = uniqueTag()
          const [first, ...others] = summerBreezeSpellings(tag, 40)
          const created = assertCreated(yield* postText(first!))
          for (const spelling of others) {
            const response = yield* postText(spelling)
            assertDuplicateOf(response, created.id)
            assert.isString(response.json.detail)
          }
          // The URL the 409 names leads to the first formula.
          const existing = yield* request("GET", `/formulas/${created.id}`)
          assert.deepStrictEqual(existing.json, created)
        })
      )

      it.effect(
        'named spellings are duplicates: reordered, case, whitespace, 10 = 10.0 = "10.000", full-width letters',
        () =>
          Effect.gen(function* () {
            const tag = uniqueTag()
            const created = assertCreated(yield* postFormula(summerBreeze(tag)))
            const spellings: Record<string, FormulaInput> = {
              reordered: {
                name: `Reordered ${tag}`,
                materials: [
                  { name: `Sandalwood ${tag}`, concentration: 5.2 },
                  { name: `Bergamot Oil ${tag}`, concentration: 15.5 },
                  { name: `Lavender Absolute ${tag}`, concentration: 10.0 }
                ]
              },
              "other case": {
                name: `Case ${tag}`,
                materials: [
                  { name: `BERGAMOT OIL ${tag.toUpperCase()}`, concentration: 15.5 },
                  { name: `lavender absolute ${tag}`, concentration: 10 },
                  { name: `SaNdAlWoOd ${tag}`, concentration: 5.2 }
                ]
              },
              whitespace: {
                name: `Whitespace ${tag}`,
                materials: [
                  { name: `  Bergamot   Oil\t${tag} `, concentration: 15.5 },
                  { name: `\nLavender \u00a0Absolute  ${tag}`, concentration: 10 },
                  { name: `Sandalwood ${tag}\t`, concentration: 5.2 }
                ]
              },
              "decimal spellings": {
                name: `Decimals ${tag}`,
                materials: [
                  { name: `Bergamot Oil ${tag}`, concentration: raw("15.50") },
                  { name: `Lavender Absolute ${tag}`, concentration: "10.000" },
                  { name: `Sandalwood ${tag}`, concentration: raw("5.200000") }
                ]
              },
              "10 as 10.0": {
                name: `Ten ${tag}`,
                materials: [
                  { name: `Bergamot Oil ${tag}`, concentration: "15.5" },
                  { name: `Lavender Absolute ${tag}`, concentration: raw("10.0") },
                  { name: `Sandalwood ${tag}`, concentration: "5.2" }
                ]
              },
              "full-width letters": {
                name: `Wide ${tag}`,
                materials: [
                  { name: `Ｂｅｒｇａｍｏｔ Ｏｉｌ ${tag}`, concentration: 15.5 },
                  { name: `Ｌａｖｅｎｄｅｒ\u3000Ａｂｓｏｌｕｔｅ ${tag}`, concentration: 10 },
                  { name: `Sandalwood ${tag}`, concentration: 5.2 }
                ]
              },
              "same name as the first": { ...summerBreeze(tag), name: `Summer Breeze ${tag}` }
            }
            for (const [label, body] of Object.entries(spellings)) {
              const response = yield* postFormula(body)
              assert.strictEqual(response.status, 409, `${label}: ${response.text}`)
              assertDuplicateOf(response, created.id)
            }
          })
      )

      it.effect("the same formula name with another make-up is a new formula (the name is not the identity)", () =>
        Effect.gen(function* () {
          const tag = uniqueTag()
          const first = assertCreated(yield* postFormula(summerBreeze(tag)))
          const base = summerBreeze(tag)
          const variants: Array<FormulaInput> = [
            // One concentration differs by the smallest step.
            { ...base, materials: base.materials.map((m, i) => (i === 0 ? { ...m, concentration: "15.500001" } : m)) },
            // One material fewer.
            { ...base, materials: base.materials.slice(0, 2) },
            // One material more.
            { ...base, materials: [...base.materials, { name: `Musk ${tag}`, concentration: 1 }] },
            // A material name that differs by a letter.
            { ...base, materials: base.materials.map((m, i) => (i === 2 ? { ...m, name: `Sandalwod ${tag}` } : m)) },
            // The same concentrations on other materials.
            {
              ...base,
              materials: [
                { name: `Bergamot Oil ${tag}`, concentration: 10 },
                { name: `Lavender Absolute ${tag}`, concentration: 15.5 },
                { name: `Sandalwood ${tag}`, concentration: 5.2 }
              ]
            }
          ]
          const ids = new Set([first.id])
          for (const variant of variants) {
            const created = assertCreated(yield* postFormula(variant))
            assert.strictEqual(created.name, `Summer Breeze ${tag}`)
            ids.add(created.id)
          }
          assert.strictEqual(ids.size, variants.length + 1)
        })
      )

      // ---- POST /formulas: invalid -----------------------------------------------------------------

      it.effect("400 lists every problem at once, each with its path and a message", () =>
        Effect.gen(function* () {
          const tag = uniqueTag()
          const response = yield* postFormula({
            name: "   ",
            materials: [
              { name: `A ${tag}`, concentration: raw("15.5000001") },
              { name: ` a  ${tag.toUpperCase()}`, concentration: -1 },
              { name: `B ${tag}`, concentration: 100.5 },
              { name: `C ${tag}`, concentration: "abc" },
              { name: 42, concentration: true },
              { concentration: 1 },
              { name: "x".repeat(201), concentration: 1 },
              "not an object"
            ]
          })
          const errors = assertInvalid(response)
          const expected = [
            "/name",
            "/materials/0/concentration",
            "/materials/1/concentration",
            "/materials/1/name",
            "/materials/2/concentration",
            "/materials/3/concentration",
            "/materials/4/name",
            "/materials/4/concentration",
            "/materials/5/name",
            "/materials/6/name",
            "/materials/7"
          ]
          assert.sameMembers([...new Set(paths(errors))], expected, JSON.stringify(errors))
          assert.match(messageAt(errors, "/materials/0/concentration"), /decimal places/)
          assert.match(messageAt(errors, "/materials/1/concentration"), /greater than 0/)
          assert.match(messageAt(errors, "/materials/1/name"), /duplicate/)
          assert.match(messageAt(errors, "/materials/2/concentration"), /at most 100/)
          assert.match(messageAt(errors, "/materials/5/name"), /required/)
          assert.match(messageAt(errors, "/materials/6/name"), /200/)
        })
      )

      it.effect("400 reports cross-material problems (sum over 100, duplicate names) beside field problems", () =>
        Effect.gen(function* () {
          const tag = uniqueTag()
          const errors = assertInvalid(
            yield* postFormula({
              name: "",
              materials: [
                { name: `A ${tag}`, concentration: 60 },
                { name: `B ${tag}`, concentration: "40.000001" },
                { name: `Ａ ${tag}`, concentration: 0.1 }
              ]
            })
          )
          assert.sameMembers(paths(errors), ["/name", "/materials", "/materials/2/name"], JSON.stringify(errors))
          assert.match(messageAt(errors, "/materials"), /100/)
        })
      )

      const tooLong = "x".repeat(201)
      const invalidCases: ReadonlyArray<{ label: string; body: (tag: string) => unknown; path: string }> = [
        { label: "an empty name", body: (tag) => ({ ...singleMaterial(tag), name: "" }), path: "/name" },
        {
          label: "a name of 201 characters",
          body: (tag) => ({ ...singleMaterial(tag), name: tooLong }),
          path: "/name"
        },
        {
          label: "a material name of 201 characters",
          body: () => ({ name: "x", materials: [{ name: tooLong, concentration: 1 }] }),
          path: "/materials/0/name"
        },
        {
          label: "an empty material name",
          body: () => ({ name: "x", materials: [{ name: " ", concentration: 1 }] }),
          path: "/materials/0/name"
        },
        { label: "concentration 0", body: (tag) => singleMaterial(tag, 0), path: "/materials/0/concentration" },
        {
          label: "a negative concentration",
          body: (tag) => singleMaterial(tag, -5),
          path: "/materials/0/concentration"
        },
        {
          label: "concentration over 100",
          body: (tag) => singleMaterial(tag, "100.000001"),
          path: "/materials/0/concentration"
        },
        {
          label: "7 decimal places (15.5000001)",
          body: (tag) => singleMaterial(tag, 15.5000001),
          path: "/materials/0/concentration"
        },
        {
          label: "7 decimal places as a string",
          body: (tag) => singleMaterial(tag, "0.0000001"),
          path: "/materials/0/concentration"
        },
        {
          label: "7 decimal places as an exponent (1e-7)",
          body: (tag) => singleMaterial(tag, raw("1e-7")),
          path: "/materials/0/concentration"
        },
        {
          label: "a non-decimal string",
          body: (tag) => singleMaterial(tag, "15,5"),
          path: "/materials/0/concentration"
        },
        {
          label: "a boolean concentration",
          body: (tag) => singleMaterial(tag, true),
          path: "/materials/0/concentration"
        },
        { label: "a null concentration", body: (tag) => singleMaterial(tag, null), path: "/materials/0/concentration" },
        {
          label: "a missing concentration",
          body: (tag) => ({ name: "x", materials: [{ name: `M ${tag}` }] }),
          path: "/materials/0/concentration"
        },
        {
          label: "a sum over 100",
          body: (tag) => ({
            name: "x",
            materials: [
              { name: `A ${tag}`, concentration: 50 },
              { name: `B ${tag}`, concentration: "50.000001" }
            ]
          }),
          path: "/materials"
        },
        {
          label: "duplicate material names (case and whitespace)",
          body: (tag) => ({
            name: "x",
            materials: [
              { name: `Rose ${tag}`, concentration: 1 },
              { name: ` ROSE  ${tag} `, concentration: 2 }
            ]
          }),
          path: "/materials/1/name"
        },
        { label: "0 materials", body: () => ({ name: "x", materials: [] }), path: "/materials" },
        {
          label: "501 materials",
          body: (tag) => ({
            name: "x",
            materials: Array.from({ length: 501 }, (_, index) => ({ name: `M${index} ${tag}`, concentration: 0.1 }))
          }),
          path: "/materials"
        },
        { label: "a numeric name", body: (tag) => ({ ...singleMaterial(tag), name: 7 }), path: "/name" },
        {
          label: "materials as an object",
          body: () => ({ name: "x", materials: { name: "m", concentration: 1 } }),
          path: "/materials"
        },
        {
          label: "a material that is not an object",
          body: () => ({ name: "x", materials: [1] }),
          path: "/materials/0"
        },
        { label: "a missing name", body: (tag) => ({ materials: singleMaterial(tag).materials }), path: "/name" },
        { label: "missing materials", body: () => ({ name: "x" }), path: "/materials" },
        { label: "an array body", body: () => [], path: "" },
        { label: "a string body", body: () => "formula", path: "" },
        { label: "a number body", body: () => 42, path: "" },
        { label: "a null body", body: () => null, path: "" }
      ]

      it.effect.each(invalidCases)("400 with the problem's path for $label", ({ body, path }) =>
        Effect.gen(function* () {
          const errors = assertInvalid(yield* postFormula(body(uniqueTag())))
          assert.include(paths(errors), path, JSON.stringify(errors))
        })
      )

      it.effect("15.50000000000000001 sent as JSON text is rejected as too precise, never rounded to 15.5", () =>
        Effect.gen(function* () {
          const tag = uniqueTag()
          const text = `{"name":"Precise ${tag}","materials":[{"name":"Bergamot ${tag}","concentration":15.50000000000000001}]}`
          const errors = assertInvalid(yield* postText(text))
          assert.deepStrictEqual(paths(errors), ["/materials/0/concentration"])
          assert.match(errors[0]!.message, /decimal places/)
          // Had it been rounded, 15.5 would now be a duplicate; it is new.
          assertCreated(yield* postText(text.replace("15.50000000000000001", "15.5")))
        })
      )

      it.effect("invalid submissions store nothing: the corrected make-up is then new (201)", () =>
        Effect.gen(function* () {
          const tag = uniqueTag()
          const body = summerBreeze(tag)
          assertInvalid(yield* postFormula({ ...body, name: "" }))
          assertInvalid(
            yield* postFormula({ ...body, materials: [...body.materials, { name: `X ${tag}`, concentration: 70 }] })
          )
          assertCreated(yield* postFormula(body))
        })
      )

      // ---- POST /formulas: the body itself ---------------------------------------------------------

      it.effect("a body that is not JSON is 400 malformed-json", () =>
        Effect.gen(function* () {
          for (const text of ["{bad", '{"name": "x",}', "'single'", "undefined", '{"name":"x"} trailing']) {
            assertProblem(yield* postText(text), 400, "malformed-json")
          }
          assertProblem(yield* postText(new Uint8Array([0x7b, 0xff, 0xfe, 0x7d])), 400, "malformed-json")
        })
      )

      it.effect("an empty body is 400", () =>
        Effect.gen(function* () {
          assertProblem(yield* postText(""), 400)
        })
      )

      it.effect("a content type other than JSON, or none, is 415", () =>
        Effect.gen(function* () {
          const body = jsonText(singleMaterial(uniqueTag()))
          for (const contentType of ["text/plain", "application/x-www-form-urlencoded", "application/jsonx"]) {
            const response = yield* send("/formulas", {
              method: "POST",
              headers: { "content-type": contentType },
              body
            })
            assertProblem(response, 415, "unsupported-media-type")
          }
          // fetch sends bytes without a content type.
          const none = yield* send("/formulas", { method: "POST", body: new TextEncoder().encode(body) })
          assertProblem(none, 415, "unsupported-media-type")
          // JSON with parameters is JSON: the same body is then accepted.
          const withCharset = yield* send("/formulas", {
            method: "POST",
            headers: { "content-type": "application/json; charset=utf-8" },
            body
          })
          assertCreated(withCharset)
        })
      )

      it.effect("a body over 1 MiB is 413 with a Content-Length; exactly 1 MiB is accepted", () =>
        Effect.gen(function* () {
          const tag = uniqueTag()
          assertProblem(yield* postText(paddedTo(singleMaterial(tag), MiB + 1)), 413, "payload-too-large")
          assertProblem(yield* postText(paddedTo(singleMaterial(tag), 5 * MiB)), 413, "payload-too-large")
          assertCreated(yield* postText(paddedTo(singleMaterial(tag), MiB)))
        })
      )

      it.effect("a chunked body over 1 MiB is 413; a chunked body of exactly 1 MiB is accepted", () =>
        Effect.gen(function* () {
          const tag = uniqueTag()
          assertProblem(yield* postChunked(paddedTo(singleMaterial(tag), MiB + 1)), 413, "payload-too-large")
          assertProblem(yield* postChunked(paddedTo(singleMaterial(tag), 4 * MiB)), 413, "payload-too-large")
          assertCreated(yield* postChunked(paddedTo(singleMaterial(tag), MiB)))
        })
      )

      // ---- GET /formulas ---------------------------------------------------------------------------

      it.effect(
        "GET /formulas is newest first, 20 by default, limit 1..100, and its cursors walk every formula once",
        () =>
          Effect.gen(function* () {
            const tag = uniqueTag()
            const created: Array<string> = []
            for (let index = 0; index < 105; index++) {
              created.push(assertCreated(yield* postFormula(singleMaterial(`${tag}-${index}`))).id)
            }
            const newestFirst = [...created].reverse()

            const firstPage = yield* request("GET", "/formulas")
            assert.strictEqual(firstPage.status, 200)
            assert.deepStrictEqual(
              firstPage.json.items.map((item: { id: string }) => item.id),
              newestFirst.slice(0, 20)
            )
            assert.isString(firstPage.json.nextCursor)
            // Items are whole formulas, as GET /formulas/{id} returns them.
            const one = yield* request("GET", `/formulas/${firstPage.json.items[0].id}`)
            assert.deepStrictEqual(firstPage.json.items[0], one.json)

            const single = yield* request("GET", "/formulas?limit=1")
            assert.deepStrictEqual(
              single.json.items.map((item: { id: string }) => item.id),
              newestFirst.slice(0, 1)
            )
            const hundred = yield* request("GET", "/formulas?limit=100")
            assert.deepStrictEqual(
              hundred.json.items.map((item: { id: string }) => item.id),
              newestFirst.slice(0, 100)
            )
            assert.isString(hundred.json.nextCursor)

            // Walking by 7 and by 100 yields the same sequence: no duplicates, no gaps.
            const bySeven = yield* walkPages(7)
            const byHundred = yield* walkPages(100)
            assert.strictEqual(new Set(bySeven).size, bySeven.length, "no formula appears twice")
            assert.deepStrictEqual(bySeven, byHundred)
            assert.deepStrictEqual(bySeven.slice(0, created.length), newestFirst)
            // A last page that is exactly full still says nextCursor null (no phantom empty page follows).
            const divisor = Array.from({ length: 100 }, (_, i) => 100 - i).find((n) => bySeven.length % n === 0)!
            assert.deepStrictEqual(yield* walkPages(divisor), bySeven)
          })
      )

      it.effect.each(["0", "101", "abc", "-1", "1.5", "", "1e400"])("GET /formulas?limit=%s is 400", (limit) =>
        Effect.gen(function* () {
          assertProblem(yield* request("GET", `/formulas?limit=${limit}`), 400)
        })
      )

      it.effect("GET /formulas with a cursor this API did not return is 400", () =>
        Effect.gen(function* () {
          const forged = [
            "garbage",
            "!!!",
            Buffer.from("s0").toString("base64url"),
            Buffer.from("s-1").toString("base64url"),
            Buffer.from(`s${"9".repeat(30)}`).toString("base64url"),
            Buffer.from("1; DROP TABLE formulas").toString("base64url")
          ]
          for (const cursor of forged) {
            const response = yield* request("GET", `/formulas?cursor=${encodeURIComponent(cursor)}`)
            assertProblem(response, 400)
          }
        })
      )

      // ---- GET /formulas/{id} ----------------------------------------------------------------------

      it.effect("GET /formulas/{id} of an unknown or malformed id is 404 problem+json", () =>
        Effect.gen(function* () {
          const created = assertCreated(yield* postFormula(singleMaterial(uniqueTag())))
          for (const id of [
            randomUUID(),
            "not-a-uuid",
            "12345",
            `${created.id}0`,
            created.id.slice(0, -1),
            "%20",
            "%00"
          ]) {
            assertProblem(yield* request("GET", `/formulas/${id}`), 404, "formula-not-found")
          }
        })
      )

      // ---- system ----------------------------------------------------------------------------------

      it.effect("GET /health is 200 while the database answers", () =>
        Effect.gen(function* () {
          const response = yield* request("GET", "/health")
          assert.strictEqual(response.status, 200)
          assert.deepStrictEqual(response.json, { status: "ok" })
        })
      )

      it.effect("GET /openapi.json is an OpenAPI 3 document listing /formulas and /formulas/{id}", () =>
        Effect.gen(function* () {
          const response = yield* request("GET", "/openapi.json")
          assert.strictEqual(response.status, 200)
          assert.match(response.json.openapi, /^3\./)
          assert.containsAllKeys(response.json.paths, ["/formulas", "/formulas/{id}"])
          assert.containsAllKeys(response.json.paths["/formulas"], ["get", "post"])
          assert.containsAllKeys(response.json.paths["/formulas/{id}"], ["get"])
        })
      )

      it.effect("GET /docs is an HTML page that loads nothing from another host", () =>
        Effect.gen(function* () {
          const response = yield* request("GET", "/docs")
          assert.strictEqual(response.status, 200)
          assert.include(response.headers.get("content-type") ?? "", "text/html")
          const html = response.text
          const externalAttributes = [...html.matchAll(/\b(?:src|href)\s*=\s*["']?\s*(?:https?:)?\/\/[^"'\s>]+/gi)].map(
            (match) => match[0]
          )
          assert.deepStrictEqual(externalAttributes, [], "no script, style or link is fetched from another host")
          // The page's script injects @font-face rules pointing at fonts.scalar.com unless told not to.
          const call = html.slice(html.lastIndexOf("createApiReference("))
          const config = call.slice(0, call.indexOf("content:"))
          assert.isFalse(
            html.includes("fonts.scalar.com") && !/"withDefaultFonts"\s*:\s*false/.test(config),
            "the docs page loads its default fonts from https://fonts.scalar.com (set withDefaultFonts: false)"
          )
        })
      )

      // ---- no client input yields a 5xx ------------------------------------------------------------

      it.effect.prop(
        "no generated body (any JSON, formula-shaped junk, raw bytes) yields a 5xx",
        { junk: Junk },
        ({ junk }) =>
          Effect.gen(function* () {
            const response =
              junk.kind === "bytes"
                ? yield* postText(new Uint8Array(junk.value))
                : yield* postText(JSON.stringify(junk.value))
            assert.isBelow(response.status, 500, `${response.status} ${response.text.slice(0, 300)}`)
          }),
        { timeout: 120_000, arbitrary: { runs: 300, size: 40, seed: 20261122 } }
      )

      it.effect("no hand-written hostile body (deep nesting, huge numbers, odd Unicode) yields a 5xx", () =>
        Effect.gen(function* () {
          for (const body of nastyBodies) {
            const response = yield* postText(body)
            assert.isBelow(
              response.status,
              500,
              `${body.slice(0, 80)} → ${response.status} ${response.text.slice(0, 300)}`
            )
          }
        })
      )
    })
  })
}
