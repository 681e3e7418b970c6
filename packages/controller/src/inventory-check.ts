import { GildError, isValidLine, MAX_IMAGE_VERSION } from "@gild/core";
import { APP_HEALTHS, APP_STATES, type Inventory } from "@gild/protocol";

/**
 * What one host's inventory may hold. A real host stays far below (an agent keeps two generations of
 * an app and the image versions its apps use); the bounds keep one authenticated but broken or hostile
 * agent from filling the controller's store (docs/architecture.md, The wire).
 */
export const INVENTORY_LIMITS = {
  images: 1000,
  apps: 200,
  generationsPerApp: 16,
  /**
   * A health detail carries a probe's result or a rollback's reason with a log tail: longer than this
   * is no agent's (they clip at 4096); up to it, the store keeps its first 8192 characters.
   */
  healthDetailChars: 65_536,
  /** Facts: how many, and how long a name and a value may be (the agent's are a handful of short words). */
  facts: 64,
  factNameChars: 64,
  factValueChars: 4096,
} as const;

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const SPEC_HASH_RE = /^[0-9a-f]{0,128}$/;
// Wall-clock readings an agent reports: 0 (unknown) or a time before the year 2286.
const MAX_TIME_MS = 1e13;

function isVersion(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 1 && n <= MAX_IMAGE_VERSION;
}

function isCount(n: number, max = Number.MAX_SAFE_INTEGER): boolean {
  return Number.isSafeInteger(n) && n >= 0 && n <= max;
}

/** Every problem of an inventory, each with its path; empty when it may be stored. */
export function inventoryProblems(inventory: Inventory): string[] {
  const problems: string[] = [];
  const { images, apps } = inventory;
  if (images.length > INVENTORY_LIMITS.images)
    problems.push(`images: ${images.length} entries, at most ${INVENTORY_LIMITS.images}`);
  if (apps.length > INVENTORY_LIMITS.apps)
    problems.push(`apps: ${apps.length} entries, at most ${INVENTORY_LIMITS.apps}`);
  if (!isCount(inventory.poolFreeBytes) || !isCount(inventory.poolTotalBytes))
    problems.push("poolFreeBytes, poolTotalBytes: not byte counts");
  else if (inventory.poolFreeBytes > inventory.poolTotalBytes)
    problems.push("poolFreeBytes: more than poolTotalBytes");
  if (!isCount(inventory.reportedAtMs, MAX_TIME_MS)) problems.push("reportedAtMs: not a time");
  const facts = Object.entries(inventory.facts);
  if (facts.length > INVENTORY_LIMITS.facts)
    problems.push(`facts: ${facts.length} entries, at most ${INVENTORY_LIMITS.facts}`);
  for (const [name, value] of facts) {
    if (!/^[A-Za-z][A-Za-z0-9_.-]*$/.test(name) || name.length > INVENTORY_LIMITS.factNameChars)
      problems.push(`facts: "${clip(name)}" is not a fact name`);
    else if (value.length > INVENTORY_LIMITS.factValueChars)
      problems.push(`facts.${name}: longer than ${INVENTORY_LIMITS.factValueChars} characters`);
  }
  // Past the count bounds, the rest is not read: a refusal names at most this many problems.
  if (problems.length > 0) return problems;

  const seenImages = new Set<string>();
  images.forEach((image, i) => {
    const at = `images[${i}]`;
    if (!isValidLine(image.line))
      problems.push(`${at}.line: "${clip(image.line)}" is not an image line name`);
    if (!isVersion(image.version)) problems.push(`${at}.version: ${image.version} is not an image version`);
    if (!UUID_RE.test(image.uuid)) problems.push(`${at}.uuid: not a subvolume uuid`);
    if (image.receivedUuid !== "" && !UUID_RE.test(image.receivedUuid))
      problems.push(`${at}.receivedUuid: not a subvolume uuid`);
    const key = `${image.line}@${image.version}`;
    if (seenImages.has(key)) problems.push(`${at}: ${clip(key)} is listed twice`);
    seenImages.add(key);
  });
  const seenApps = new Set<string>();
  apps.forEach((app, i) => {
    const at = `apps[${i}]`;
    if (!isValidLine(app.name)) problems.push(`${at}.name: "${clip(app.name)}" is not an app name`);
    else if (seenApps.has(app.name)) problems.push(`${at}.name: ${app.name} is listed twice`);
    seenApps.add(app.name);
    if (!isValidLine(app.imageLine))
      problems.push(`${at}.imageLine: "${clip(app.imageLine)}" is not an image line name`);
    if (!isVersion(app.imageVersion))
      problems.push(`${at}.imageVersion: ${app.imageVersion} is not an image version`);
    if (!APP_STATES.includes(app.state))
      problems.push(`${at}.state: "${clip(String(app.state))}" is not a state`);
    if (!APP_HEALTHS.includes(app.health))
      problems.push(`${at}.health: "${clip(String(app.health))}" is not a health`);
    if (app.healthDetail.length > INVENTORY_LIMITS.healthDetailChars)
      problems.push(`${at}.healthDetail: longer than ${INVENTORY_LIMITS.healthDetailChars} characters`);
    if (!isCount(app.healthSinceMs, MAX_TIME_MS)) problems.push(`${at}.healthSinceMs: not a time`);
    if (!isCount(app.healthyForMs, MAX_TIME_MS)) problems.push(`${at}.healthyForMs: not a duration`);
    if (!(app.generation >= 1 && isCount(app.generation, 0xffffffff)))
      problems.push(`${at}.generation: ${app.generation} is not a generation`);
    if (!isCount(app.previousGeneration, 0xffffffff))
      problems.push(`${at}.previousGeneration: ${app.previousGeneration} is not a generation`);
    if (app.previousImageVersion !== 0 && !isVersion(app.previousImageVersion))
      problems.push(`${at}.previousImageVersion: ${app.previousImageVersion} is not an image version`);
    if (app.generations.length > INVENTORY_LIMITS.generationsPerApp)
      problems.push(
        `${at}.generations: ${app.generations.length} entries, at most ${INVENTORY_LIMITS.generationsPerApp}`,
      );
    else if (!app.generations.every((g) => g >= 1 && isCount(g, 0xffffffff)))
      problems.push(`${at}.generations: not all generations`);
    if (!SPEC_HASH_RE.test(app.specHash)) problems.push(`${at}.specHash: not a hex digest`);
    if (app.codeLine === "") {
      if (app.codeVersion !== 0) problems.push(`${at}.codeVersion: set without a code line`);
    } else {
      if (!isValidLine(app.codeLine))
        problems.push(`${at}.codeLine: "${clip(app.codeLine)}" is not a code line name`);
      if (!isVersion(app.codeVersion))
        problems.push(`${at}.codeVersion: ${app.codeVersion} is not a code version`);
    }
    if (app.previousCodeVersion !== 0 && !isVersion(app.previousCodeVersion))
      problems.push(`${at}.previousCodeVersion: ${app.previousCodeVersion} is not a code version`);
  });
  return problems;
}

function clip(text: string): string {
  return text.length > 64 ? `${text.slice(0, 64)}...` : text;
}

/** Throws GILD_INVENTORY_INVALID (at most 20 problems named, all counted) unless the inventory may be stored. */
export function assertValidInventory(inventory: Inventory): void {
  const problems = inventoryProblems(inventory);
  if (problems.length === 0) return;
  const shown = problems.slice(0, 20);
  throw new GildError(
    "GILD_INVENTORY_INVALID",
    `inventory refused (${problems.length} problem${problems.length === 1 ? "" : "s"}): ${shown.join("; ")}`,
    {
      hint: "the agent sent what no gild agent reports; nothing of it was stored (is the agent genuine and of a supported version?)",
      details: { problems: shown },
    },
  );
}
