/**
 * Array parameters for batch statements: one array per column, `unnest`ed in
 * SQL, so a batch of any size is the same statement text (prepared once) and
 * one round trip. Shared by every module that writes or reads in batches.
 */
import { PgTypes } from "@effect/sql-pg"

/** An array parameter of the given element type; a value the type cannot encode is a defect. */
export const arrayOf =
  <A = unknown>(oid: number) =>
  (values: ReadonlyArray<A>) => {
    const parameter = PgTypes.array(values, oid)
    if (parameter._tag === "Failure") throw parameter.failure
    return parameter.success
  }

export const uuids = arrayOf(PgTypes.OID.uuid)
export const texts = arrayOf(PgTypes.OID.text)
export const ints = arrayOf(PgTypes.OID.int4)
export const bools = arrayOf(PgTypes.OID.bool)
export const numerics = arrayOf(PgTypes.OID.numeric)
export const timestamps = arrayOf(PgTypes.OID.timestamptz)
export const jsonbs = arrayOf(PgTypes.OID.jsonb)
