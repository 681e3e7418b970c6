import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  appInstances,
  createBusyboxApp,
  createBusyboxImage,
  createFleet,
  deployApp,
  type Fleet,
  type HeadlessChromium,
  launchHeadlessChromium,
  type RolloutStatusView,
  updateImage,
  waitFor,
} from "@gild/testkit";
import { describeWith } from "@gild/testkit/gate";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, expect, it } from "vitest";

const PORT = 8080;
/**
 * The screenshots are taken in the test's temp dir, removed at the end; GILD_TEST_SCREENSHOTS=<dir>
 * keeps a copy of each there (README, Tests).
 */
const KEEP_SCREENSHOTS = process.env.GILD_TEST_SCREENSHOTS;

describeWith(
  ["root", "btrfs", "nspawn", "netns", "busybox", "chromium"],
  "the dashboard in a real browser",
  () => {
    let fleet: Fleet;
    let dir: string;
    let browserProcess: HeadlessChromium | undefined;
    let browser: Browser | undefined;
    let context: BrowserContext;
    let page: Page;
    const tokens: Record<string, string> = {};
    /** What the browser said about the page: CSP violations and script errors must stay empty. */
    const problems: string[] = [];
    let loads = 0;
    let rolloutId = "";

    const addUser = async (name: string, role: string) => {
      const made = await fleet.gildJson<{ token: string }>(["user", "add", name, "--role", role]);
      tokens[name] = made.token;
    };

    const signIn = async (name: string) => {
      await page.locator('input[name="token"]').fill(tokens[name] as string);
      await page.locator('button[type="submit"]').click();
      await page.locator(`.who:has-text("${name}")`).waitFor({ timeout: 10_000 });
    };

    const rollout = () => page.locator("section.rollout");
    const hostRow = (wave: number, state?: string) =>
      page.locator(`[data-wave="${wave}"] tr[data-host]${state ? `[data-state="${state}"]` : ""}`);

    /** Click a verb's button, then confirm it in the dialog. */
    const drive = async (verb: string) => {
      await page.locator(`button[data-verb="${verb}"]:enabled`).click();
      const dialog = page.locator("dialog.confirm[open]");
      await dialog.waitFor({ timeout: 5_000 });
      await dialog.locator('button[data-confirm="yes"]').click();
    };

    const screenshot = async (name: string): Promise<string> => {
      const path = join(dir, `${name}.png`);
      await page.screenshot({ path, fullPage: true });
      if (KEEP_SCREENSHOTS) {
        mkdirSync(KEEP_SCREENSHOTS, { recursive: true });
        const kept = join(KEEP_SCREENSHOTS, `dashboard-${name}.png`);
        copyFileSync(path, kept);
        process.stdout.write(`dashboard screenshot: ${kept}\n`);
      }
      return path;
    };

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), "gild-dashboard-"));
      // A download rate limit makes each host's transfer take a few seconds: the page shows its bar.
      fleet = await createFleet({ hosts: 3, agentArgs: ["--max-download-rate", "8MiB"] });
      await createBusyboxImage(fleet, "web", { marker: "release-1" });
      await createBusyboxApp(fleet, { hosts: "host-1,host-2,host-3", port: PORT, stopTimeout: "5s" });
      await deployApp(fleet, "site", "web@1");
      await waitFor(
        async () => {
          const all = await appInstances(fleet, "site");
          return all.length === 3 && all.every((i) => i.health === "healthy");
        },
        { what: "site healthy on every host", timeoutMs: 60_000 },
      );
      await addUser("alice", "operator");
      await addUser("vera", "viewer");

      browserProcess = await launchHeadlessChromium(dir);
      process.stdout.write(`chromium pid ${browserProcess.pid}, profile in ${dir}\n`);
      browser = await chromium.connectOverCDP(browserProcess.wsEndpoint);
      // The fleet's controller has its own CA, which this fresh profile does not know.
      context = await browser.newContext({
        ignoreHTTPSErrors: true,
        viewport: { width: 1400, height: 1000 },
      });
      page = await context.newPage();
      page.on("console", (m) => {
        // Answers the test asks for (a 401 before sign-in, the viewer's 403) are checked where they happen.
        if (/Failed to load resource/.test(m.text())) return;
        if (m.type() === "error" || /Content Security Policy/i.test(m.text()))
          problems.push(`${m.text()} (${m.location().url})`);
      });
      page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
      page.on("load", () => loads++);
    });

    afterAll(async () => {
      // Each step on its own: a failure of one never keeps the next from running.
      await browser?.close().catch(() => undefined);
      await browserProcess?.close();
      await fleet?.destroy();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it("keeps Chromium's own files in the test's dir", () => {
      // Its singleton socket's dir goes to its temporary dir: the test's, not the machine's /tmp.
      const tmp = readdirSync(join(dir, "chromium-home", "tmp"));
      expect(tmp.some((name) => name.startsWith("org.chromium.Chromium."))).toBe(true);
    });

    it("signs in with a user's token: an HttpOnly, SameSite=Strict session cookie, the fleet page", async () => {
      await page.goto(`${fleet.controllerUrl}/`);
      await signIn("alice");
      const cookies = await context.cookies();
      expect(cookies).toHaveLength(1);
      expect(cookies[0]).toMatchObject({
        name: "__Host-gild-session",
        httpOnly: true,
        sameSite: "Strict",
        secure: true,
      });
      // The page's scripts cannot read it.
      expect(await page.evaluate("document.cookie")).toBe("");
      await page.locator("table.hosts tbody tr").nth(2).waitFor({ timeout: 10_000 });
      expect(await page.locator("table.hosts tbody tr").count()).toBe(3);
      expect(await page.locator('tr[data-host="host-1"]').textContent()).toContain("online");
      for (const tab of ["Images", "Apps", "Audit"]) {
        await page.locator(`nav a:has-text("${tab}")`).click();
        await page.locator(`h1:has-text("${tab}")`).waitFor({ timeout: 5_000 });
        await page.locator("table").first().waitFor({ timeout: 10_000 });
      }
      expect(await page.locator("table.audit").textContent()).toContain("signed in to the dashboard");
    });

    it("shows a rollout live, wave by wave; pause from the page stops it, resume finishes it", async () => {
      // 24 MiB of new data at 8 MiB/s: each host's transfer takes about 3 s.
      const v2 = await updateImage(fleet, "web", "head -c 25165824 /dev/urandom > /payload.bin");
      const started = await fleet.gildJson<RolloutStatusView>([
        "rollout",
        "start",
        `web@${v2.version}`,
        "--waves",
        "1,1",
        "--promote",
        "auto",
        "--min-healthy",
        "1s",
        "--canary-bake",
        "8s",
        "--bake",
        "2s",
        "--healthy-deadline",
        "30s",
        "--progress-deadline",
        "60s",
      ]);
      rolloutId = started.id;
      expect(started.waves.map((w) => w.hosts.length)).toEqual([1, 1, 1]);
      const loadsBefore = loads;
      // Reached by links (hash routes), not by loading a page.
      await page.locator('nav a:has-text("Rollouts")').click();
      await page.locator(`a:has-text("${rolloutId}")`).click();
      await page.locator('section.rollout[data-live="live"]').waitFor({ timeout: 10_000 });

      // The canary's transfer shows as a progress bar, then the canary turns healthy while the other
      // waves have not been switched.
      // (Polled from here: the page's CSP forbids the eval a string predicate in the page would need.)
      const bars = page.locator('[data-wave="0"] progress');
      await waitFor(
        async () =>
          (await bars.evaluateAll((found) => found.map((bar) => Number(bar.getAttribute("value"))))).some(
            (value) => value > 0,
          ),
        { what: "the canary's transfer bar moving", timeoutMs: 30_000, intervalMs: 100 },
      );
      await screenshot("rollout-transfer");
      await hostRow(0, "healthy").waitFor({ timeout: 60_000 });
      expect(await hostRow(1, "healthy").count()).toBe(0);
      expect(await hostRow(2, "healthy").count()).toBe(0);
      // The canary bake's countdown.
      await page.locator('[data-clock="bake"]').waitFor({ timeout: 5_000 });

      await drive("pause");
      await page.locator('section.rollout[data-rollout-state="paused"]').waitFor({ timeout: 10_000 });
      const waitingStates = ["pending", "fetching", "staged"];
      // Stopped: longer than the whole canary bake passes and no host of a later wave is switched.
      const pausedAt = Date.now();
      while (Date.now() - pausedAt < 10_000) {
        for (const wave of [1, 2]) {
          for (const state of await hostRow(wave).evaluateAll((rows) =>
            rows.map((r) => (r as unknown as { dataset: { state: string } }).dataset.state),
          ))
            expect(waitingStates, `wave ${wave} while paused`).toContain(state);
        }
        await page.waitForTimeout(1_000);
      }
      expect((await fleet.gildJson<RolloutStatusView>(["rollout", "status", rolloutId])).state).toBe(
        "paused",
      );
      await screenshot("rollout-paused");

      await drive("resume");
      await hostRow(1, "healthy").waitFor({ timeout: 60_000 });
      await page.locator('section.rollout[data-rollout-state="succeeded"]').waitFor({ timeout: 90_000 });
      expect(await hostRow(2, "healthy").count()).toBe(1);
      await screenshot("rollout-succeeded");

      // Wave by wave, as the events on the page say: each wave started after the one before completed,
      // and the pause held the canary's bake.
      const events = (await page.locator("ol.events li").allTextContents()).reverse();
      const at = (pattern: RegExp) => {
        const index = events.findIndex((e) => pattern.test(e));
        expect(index, `${pattern} in\n${events.join("\n")}`).toBeGreaterThanOrEqual(0);
        return index;
      };
      const sequence = [
        at(/canary wave completed/),
        at(/pause by alice/),
        at(/resume by alice/),
        at(/wave 1 started/),
        at(/wave 1 completed/),
        at(/wave 2 started/),
        at(/wave 2 completed/),
        at(/-> succeeded/),
      ];
      expect(sequence, events.join("\n")).toEqual([...sequence].sort((a, b) => a - b));
      // Every change arrived over the event stream: the page was never loaded again.
      expect(loads).toBe(loadsBefore);
      expect(problems).toEqual([]);
    });

    it("shows a viewer no buttons, and the API refuses a viewer's pause with 403", async () => {
      await page.locator('button:has-text("Sign out")').click();
      await page.locator('input[name="token"]').waitFor({ timeout: 5_000 });
      expect(await context.cookies()).toHaveLength(0);
      await signIn("vera");
      await page.goto(`${fleet.controllerUrl}/#/rollouts/${rolloutId}`);
      await rollout().waitFor({ timeout: 10_000 });
      await page.locator('section.rollout[data-rollout-state="succeeded"]').waitFor({ timeout: 10_000 });
      expect(await page.locator("button[data-verb]").count()).toBe(0);
      // The page's own session, with its CSRF token, as a forged button would send it.
      const answer = (await page.evaluate(`(async () => {
        const session = await (await fetch("/v1/session")).json();
        const res = await fetch("/v1/rollouts/${rolloutId}/pause", {
          method: "POST",
          headers: { "content-type": "application/json", "x-gild-csrf": session.csrfToken },
          body: "{}",
        });
        return { status: res.status, body: await res.json() };
      })()`)) as { status: number; body: { error: { code: string } } };
      expect(answer.status).toBe(403);
      expect(answer.body.error.code).toBe("GILD_FORBIDDEN");
      // And with the viewer's token, as the CLI sends it.
      const cli = await fleet.gild(["rollout", "pause", rolloutId], {
        env: { GILD_TOKEN: tokens.vera as string },
      });
      expect(cli.code).not.toBe(0);
      expect(cli.stderr).toContain("GILD_FORBIDDEN");
      expect(problems).toEqual([]);
    });
  },
);
