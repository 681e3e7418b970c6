import { COMMAND_KINDS, commandKindOf, pb } from "@gild/protocol";
import { describe, expect, it } from "vitest";

describe("command kinds", () => {
  // That the list is complete, the compiler checks (it is keyed by the generated oneof's type).
  it("names only fields of the schema's Command oneof", () => {
    for (const kind of COMMAND_KINDS) {
      const decoded = pb.Command.decode(pb.Command.encode({ commandId: "c", [kind]: {} }).finish());
      expect(decoded.kind).toBe(kind);
    }
  });

  it("names the one kind a command carries, and none for zero or two", () => {
    expect(commandKindOf({ deployApp: { specHash: "h" } })).toBe("deployApp");
    expect(commandKindOf({})).toBeUndefined();
    expect(commandKindOf({ deployApp: {}, removeApp: {} })).toBeUndefined();
  });
});
