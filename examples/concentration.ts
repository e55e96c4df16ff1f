/**
 * The example worker's "slow heuristic" (examples/worker.ts), apart from the
 * worker so it can be tested without running it: the fragrance concentration
 * class of a formula from the total concentration of its materials, in exact
 * decimals.
 */

/** An exact decimal as millionths (concentrations have at most 6 decimal places), so no float rounding. */
export const millionths = (value: string | number): bigint => {
  const [whole, fraction = ""] = String(value).split(".")
  return BigInt(whole!) * 1_000_000n + BigInt(fraction.padEnd(6, "0").slice(0, 6))
}
export const percent = (value: bigint) =>
  `${value / 1_000_000n}.${(value % 1_000_000n).toString().padStart(6, "0")}`.replace(/\.?0+$/, "")

/**
 * The classes by total concentration of aromatic materials: Parfum 20–30 %
 * (above 30 % too: an extrait), Eau de Parfum 15–20 %, Eau de Toilette 5–15 %,
 * Eau de Cologne 2–4 % (up to 5 %, where Eau de Toilette begins), below that
 * Eau Fraîche. A boundary belongs to the stronger class.
 */
export const concentrationClass = (total: bigint): string =>
  total >= 20_000_000n
    ? "Parfum"
    : total >= 15_000_000n
      ? "Eau de Parfum"
      : total >= 5_000_000n
        ? "Eau de Toilette"
        : total >= 2_000_000n
          ? "Eau de Cologne"
          : "Eau Fraîche"
