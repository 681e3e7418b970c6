import { certificateSerial } from "@gild/controller";
import { describe, expect, it } from "vitest";

describe("certificate serials", () => {
  it("are positive and in minimal DER form: the first byte is never 0x00 nor has its high bit set", () => {
    // 1 serial in 256 used to start with a needless 0x00, which OpenSSL refuses as illegal padding.
    for (let i = 0; i < 5000; i++) {
      const serial = certificateSerial();
      expect(serial).toMatch(/^[0-9a-f]{32}$/);
      const first = Number.parseInt(serial.slice(0, 2), 16);
      expect(first).toBeGreaterThanOrEqual(0x40);
      expect(first).toBeLessThan(0x80);
    }
  });
});
