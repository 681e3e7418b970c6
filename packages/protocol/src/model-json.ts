// The model's messages as JSON, for what is kept on disk (the agent's journal, the controller's
// commands table): plain JSON, with byte arrays as {"$bytes": "<base64>"}. Independent of any protocol
// version, so a stored command or result outlives the wire it came on.

const BYTES = "$bytes";

/** JSON text of a model value (commands, statuses). */
export function modelToJson(value: unknown): string {
  // The replacer reads the holder's own value: JSON.stringify hands it a Buffer already turned into
  // {type: "Buffer", data: [...]} by Buffer's toJSON, which would come back as a plain object.
  return JSON.stringify(value, function (this: Record<string, unknown>, key: string, v: unknown) {
    const original = this[key];
    return original instanceof Uint8Array ? { [BYTES]: Buffer.from(original).toString("base64") } : v;
  });
}

/** A model value from modelToJson's text; throws on text that is not JSON. */
export function modelFromJson<T>(text: string): T {
  return JSON.parse(text, (_key, v: unknown) => {
    if (v !== null && typeof v === "object" && !Array.isArray(v)) {
      const encoded = (v as Record<string, unknown>)[BYTES];
      if (typeof encoded === "string" && Object.keys(v).length === 1)
        return new Uint8Array(Buffer.from(encoded, "base64"));
    }
    return v;
  }) as T;
}
