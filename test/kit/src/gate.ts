import { describe, it } from "vitest";
import { type Requirement, unmetRequirement } from "./requirements.js";

/**
 * describe() for tests that need root, btrfs, nspawn...: when the machine lacks one, the suite is
 * skipped with a printed reason, except under CI=true, where the lack is a failing test, so that CI can
 * never pass by skipping.
 */
export function describeWith(needs: readonly Requirement[], name: string, body: () => void): void {
  const reason = unmetRequirement(needs);
  if (reason === undefined) {
    describe(name, body);
    return;
  }
  if (process.env.CI === "true") {
    describe(name, () => {
      it("has what it needs on this machine", () => {
        throw new Error(`CI=true and this suite cannot run: ${reason}`);
      });
    });
    return;
  }
  process.stderr.write(`skipping "${name}": ${reason}\n`);
  describe.skip(name, body);
}
