import { parseMetricsListen, resolveAgentConfig } from "@gild/agent";
import { describe, expect, it } from "vitest";

describe("--metrics-listen", () => {
  it.each([
    ["9469", { host: "127.0.0.1", port: 9469 }],
    ["0.0.0.0:9469", { host: "0.0.0.0", port: 9469 }],
    ["[::1]:9469", { host: "::1", port: 9469 }],
    ["localhost:0", { host: "localhost", port: 0 }],
  ])("%s", (text, listen) => expect(parseMetricsListen(text)).toEqual(listen));

  it.each(["", ":9469", "99999", "host:", "host:port"])("refuses %j", (text) =>
    expect(parseMetricsListen(text)).toBeUndefined(),
  );

  it("is off by default; a bad one is a config problem with its path", () => {
    expect(resolveAgentConfig({}).metricsListen).toBeNull();
    expect(resolveAgentConfig({ metricsListen: "9469" }).metricsListen).toEqual({
      host: "127.0.0.1",
      port: 9469,
    });
    expect(() => resolveAgentConfig({ metricsListen: "nope" })).toThrow(
      expect.objectContaining({
        details: expect.objectContaining({ problems: [expect.objectContaining({ path: "metricsListen" })] }),
      }),
    );
  });
});
