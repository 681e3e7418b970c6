import { isExpectedHeader } from "@gild/agent";
import { encodeTransferHeader } from "@gild/protocol";
import { describe, expect, it } from "vitest";

const asked = { artifactId: "a1b2", offset: 8 * 1024 * 1024, sizeBytes: 20 * 1024 * 1024 };
const frame = (header: typeof asked) => Buffer.from(encodeTransferHeader(header));

describe("isExpectedHeader", () => {
  it("takes the header of what was asked for", () => {
    expect(isExpectedHeader(frame(asked), asked)).toBe(true);
  });

  it.each([
    ["another artifact", { ...asked, artifactId: "ffff" }],
    ["another offset", { ...asked, offset: 0 }],
    ["another size", { ...asked, sizeBytes: asked.sizeBytes + 1 }],
  ])("refuses %s", (_what, header) => {
    expect(isExpectedHeader(frame(header), asked)).toBe(false);
  });

  it("refuses a frame that is no header, without throwing in the socket's listener", () => {
    expect(isExpectedHeader(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f]), asked)).toBe(false);
    expect(isExpectedHeader(Buffer.alloc(5000), asked)).toBe(false);
  });
});
