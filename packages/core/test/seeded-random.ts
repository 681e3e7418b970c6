// Seeded randomness for the property tests: every failure reproduces from its seed.

/** mulberry32: a small seeded generator, so every failure reproduces from its seed. */
export function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One of `choices`, by `weights` (equal without). */
export function pick<T>(next: () => number, choices: readonly T[], weights?: readonly number[]): T {
  const w = weights ?? choices.map(() => 1);
  let roll = next() * w.reduce((s, x) => s + x, 0);
  for (const [i, choice] of choices.entries()) {
    roll -= w[i] as number;
    if (roll < 0) return choice;
  }
  return choices[choices.length - 1] as T;
}
