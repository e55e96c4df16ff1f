/**
 * Request bodies the benchmark sends from Node (priming and probes). They have
 * the shape `formulas.lua` generates: three materials, the first one's name
 * making the make-up unique.
 */
export const formulaBody = (name: string, firstMaterial: string): string =>
  JSON.stringify({
    name,
    materials: [
      { name: firstMaterial, concentration: 15.5 },
      { name: "Lavender Absolute", concentration: 10.0 },
      { name: "Sandalwood", concentration: 5.2 }
    ]
  })

/** `count` distinct make-ups labelled `label`. */
export const distinctBodies = (label: string, count: number): Array<string> =>
  Array.from({ length: count }, (_, i) => formulaBody(`Bench ${label} ${i}`, `Bergamot Oil ${label}-${i}`))
