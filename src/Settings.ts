/**
 * Integer settings from the environment. A value that is not a whole number
 * in range fails start-up with a ConfigError naming the variable.
 */
import { Config, Schema } from "effect"

export const intSetting = (name: string, range: { readonly min: number; readonly max: number }, fallback: number) =>
  Config.schema(Schema.Int.check(Schema.isBetween({ minimum: range.min, maximum: range.max })), name).pipe(
    Config.withDefault(fallback)
  )
