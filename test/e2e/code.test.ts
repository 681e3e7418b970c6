import { randomBytes } from "node:crypto";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { DeployEvent, ImageView, PushEvent, RolloutView } from "@gild/api-client";
import {
  appInstances,
  createBusyboxImage,
  createFleet,
  type Fleet,
  fetchPage,
  run,
  updateImage,
  waitFor,
  watchRollout,
} from "@gild/testkit";
import { describeWith } from "@gild/testkit/gate";
import { afterAll, beforeAll, expect, it } from "vitest";

const PORT = 8080;
const LINE = "site-code";
// busybox httpd serves the code mount; the shell (PID 1) stops it on SIGTERM.
const SERVE_CODE = `/bin/httpd -f -p ${PORT} -h /srv/code & child=$!; trap 'kill -TERM $child; exit 0' TERM; wait $child`;

describeWith(["root", "btrfs", "nspawn", "netns", "busybox"], "app code as versioned trees", () => {
  let fleet: Fleet;
  let src: string;

  beforeAll(async () => {
    fleet = await createFleet({ hosts: 2 });
    await createBusyboxImage(fleet, "web", { marker: "image v1" });
    src = join(fleet.dir, "code-src");
    await mkdir(join(src, "assets"), { recursive: true });
    await writeFile(join(src, "index.html"), "code v1\n");
    await writeFile(join(src, "healthz"), "ok\n");
    // Weight: a delta that carried unchanged files would show.
    await writeFile(join(src, "assets", "bundle.bin"), randomBytes(8 * 1024 * 1024));
  });

  afterAll(async () => {
    await fleet?.destroy();
  });

  const page = (index: number) => fetchPage(fleet.hosts[index]?.url(PORT, "/") as string, 2_000);
  const instances = () => appInstances(fleet, "site");
  const gildDeploy = async (args: string[]) => {
    const res = await fleet.gild(["app", ...args, "--json"], { timeoutMs: 120_000 });
    return { code: res.code, stderr: res.stderr, events: JSON.parse(res.stdout || "[]") as DeployEvent[] };
  };

  it("makes code versions on the controller; a line is os or code, never both", async () => {
    const v1 = await fleet.gildJson<ImageView>(["code", "create", LINE, "--from-dir", src]);
    expect(v1).toMatchObject({ line: LINE, version: 1, kind: "code", parent: null });
    const asImage = await fleet.gild(["image", "update", LINE, "--", "/bin/true"]);
    expect(asImage.code).not.toBe(0);
    expect(asImage.stderr).toContain("GILD_LINE_KIND_MISMATCH");
    const asCode = await fleet.gild(["code", "update", "web", "--from-dir", src]);
    expect(asCode.code).not.toBe(0);
    expect(asCode.stderr).toContain("GILD_LINE_KIND_MISMATCH");
    expect((await fleet.gildJson<ImageView[]>(["code", "ls"])).map((i) => `${i.line}@${i.version}`)).toEqual([
      `${LINE}@1`,
    ]);
    expect((await fleet.gildJson<ImageView[]>(["image", "ls"])).every((i) => i.kind === "os")).toBe(true);
  });

  it("runs an app with its code mounted read-only, its data writable", async () => {
    const bad = await fleet.gild([
      "app",
      "create",
      "bad",
      "--image",
      LINE,
      "--hosts",
      fleet.hosts[0]?.name ?? "",
      "--cmd",
      "true",
    ]);
    expect(bad.stderr).toContain("GILD_LINE_KIND_MISMATCH");
    await fleet.gildJson([
      "app",
      "create",
      "site",
      "--image",
      "web",
      "--code",
      LINE,
      "--code-mount",
      "/srv/code",
      "--hosts",
      fleet.hosts.map((h) => h.name).join(","),
      "--cmd",
      SERVE_CODE,
      "--data",
      "/srv/data",
      "--stop-timeout",
      "3s",
      "--healthy-deadline",
      "15s",
      "--health",
      `http://127.0.0.1:${PORT}/healthz`,
      "--health-interval",
      "200ms",
      "--min-healthy",
      "500ms",
    ]);
    const deployed = await gildDeploy(["deploy", "site"]);
    expect(deployed.code, deployed.stderr).toBe(0);
    expect(deployed.events.map((e) => e.state)).toEqual(["done", "done"]);
    for (let i = 0; i < 2; i++) expect(await page(i)).toBe("code v1\n");
    const all = await instances();
    expect(all.map((i) => [i.imageVersion, i.codeVersion])).toEqual([
      [1, 1],
      [1, 1],
    ]);
    // The code sits in the generation as a read-only snapshot at its mount point.
    const host = fleet.hosts[0];
    const mount = join(host?.poolPath ?? "", "apps", "site", String(all[0]?.generation), "srv", "code");
    const ro = await run("btrfs", ["property", "get", "-ts", mount, "ro"]);
    expect(ro.stdout.trim()).toBe("ro=true");
  });

  it("ships a one-file change as a tiny delta and rolls it out canary first", async () => {
    await writeFile(join(src, "index.html"), "code v2\n");
    const v2 = await fleet.gildJson<ImageView>(["code", "update", LINE, "--from-dir", src]);
    expect(v2).toMatchObject({ version: 2, kind: "code", parent: 1 });
    const pushed = await fleet.gildJson<PushEvent[]>([
      "image",
      "push",
      `${LINE}@2`,
      "--hosts",
      fleet.hosts[0]?.name ?? "",
    ]);
    expect(pushed[0]?.artifact?.parentVersion).toBe(1);
    expect(pushed[0]?.artifact?.sizeBytes).toBeLessThan(64 * 1024);
    const started = await fleet.gildJson<RolloutView>([
      "rollout",
      "start",
      `${LINE}@2`,
      "--canary",
      "1",
      "--waves",
      "100%",
      "--min-healthy",
      "1s",
      "--promote",
      "auto",
      "--bake",
      "0s",
      "--canary-bake",
      "0s",
    ]);
    expect(started.waves[0]?.hosts).toHaveLength(1);
    const watched = await watchRollout(fleet, started.id, 150_000);
    expect(watched.code, `${watched.stderr}\n${JSON.stringify(watched.view, null, 1)}`).toBe(0);
    expect(watched.view.versionStatus).toBe("stable");
    for (let i = 0; i < 2; i++) expect(await page(i)).toBe("code v2\n");
    await waitFor(async () => (await instances()).every((i) => i.codeVersion === 2 && i.imageVersion === 1), {
      what: "both hosts on code 2, image 1",
      timeoutMs: 30_000,
    });
  }, 240_000);

  it("moves the image without touching the code, and goes back to both when code fails its gate", async () => {
    await updateImage(fleet, "web", "sed -i 's/image v1/image v2/' /www/index.html");
    const name = fleet.hosts[0]?.name ?? "";
    const image = await gildDeploy(["deploy", "site", "--image", "web@2", "--host", name]);
    expect(image.code, image.stderr).toBe(0);
    expect(await page(0)).toBe("code v2\n");
    // Code 3 has no /healthz: the host goes back to its previous generation (image 2, code 2).
    await rm(join(src, "healthz"));
    await writeFile(join(src, "index.html"), "code v3\n");
    await fleet.gildJson(["code", "update", LINE, "--from-dir", src]);
    const broken = await gildDeploy(["deploy", "site", "--code", `${LINE}@3`, "--host", name]);
    expect(broken.code).not.toBe(0);
    expect(broken.events[0]?.state).toBe("rolled-back");
    expect(await page(0)).toBe("code v2\n");
    await waitFor(
      async () => {
        const on = (await instances()).find((i) => i.host === name);
        return on?.imageVersion === 2 && on.codeVersion === 2 && on.health === "healthy";
      },
      { what: `${name} back on image 2 with code 2, healthy`, timeoutMs: 30_000 },
    );
    await writeFile(join(src, "healthz"), "ok\n");
  }, 240_000);

  it("adds a host to a running app: it gets the image, the code and an empty data dir, then serves", async () => {
    const added = await fleet.addHost();
    await fleet.waitHostsOnline();
    const joined = await gildDeploy(["hosts", "add", "site", added.name]);
    expect(joined.code, joined.stderr).toBe(0);
    expect(joined.events).toEqual([expect.objectContaining({ host: added.name, state: "done" })]);
    // The versions the app was last deployed at: image 2 (the last deploy), code 2 (the rollout).
    expect(await page(2)).toBe("code v2\n");
    const on = (await instances()).find((i) => i.host === added.name);
    expect(on).toMatchObject({ imageVersion: 2, codeVersion: 2 });
    const inUse = await fleet.gild(["code", "rm", `${LINE}@2`]);
    expect(inUse.stderr).toContain("GILD_IMAGE_IN_USE");
    const left = await gildDeploy(["hosts", "rm", "site", added.name]);
    expect(left.code, left.stderr).toBe(0);
    expect(left.events).toEqual([expect.objectContaining({ host: added.name, state: "removed" })]);
    await waitFor(async () => !(await instances()).some((i) => i.host === added.name), {
      what: `site gone from ${added.name}`,
      timeoutMs: 30_000,
    });
    const notListed = await fleet.gild(["app", "hosts", "rm", "site", added.name]);
    expect(notListed.stderr).toContain("GILD_BAD_REQUEST");
  });
});
