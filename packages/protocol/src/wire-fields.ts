import { GildError } from "@gild/core";

// The defaults of proto3 fields as the wire mappings read them: the one place where an absent field
// becomes "", 0, false, [] or {}. (Decoded messages leave sub-messages null when absent.)

export const str = (value: string | null | undefined): string => value ?? "";
export const num = (value: number | null | undefined): number => Number(value ?? 0);
export const bool = (value: boolean | null | undefined): boolean => value === true;
export const list = <T>(value: T[] | null | undefined): T[] => (value ? [...value] : []);
export const map = (value: Record<string, string> | null | undefined): Record<string, string> => ({
  ...(value ?? {}),
});
/** Bytes as a plain Uint8Array (the decoder gives Node Buffers; the model does not depend on Node). */
export const bytes = (value: Uint8Array | null | undefined): Uint8Array =>
  value ? new Uint8Array(value.buffer, value.byteOffset, value.byteLength) : new Uint8Array();

/** A value outside what this side understands: the frame is malformed. */
export function malformed(what: string): GildError {
  return new GildError("GILD_PROTO_MALFORMED", `malformed frame: ${what}`);
}

/** Look `value` up in a two-way table; malformed when it has no entry. */
export function lookup<K, V>(table: ReadonlyMap<K, V>, value: K, what: string): V {
  const found = table.get(value);
  if (found === undefined) throw malformed(`${what} ${String(value)} is not known`);
  return found;
}

/** The inverse of a map (values must be unique). */
export function invert<K, V>(table: ReadonlyMap<K, V>): ReadonlyMap<V, K> {
  return new Map([...table].map(([k, v]) => [v, k]));
}
