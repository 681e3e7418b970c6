import { GildError } from "./errors.js";

/** An image line (`php`) and one of its integer versions (`php@3`). */
export interface ImageRef {
  line: string;
  version: number;
}

const LINE_RE = /^[a-z][a-z0-9-]{0,62}$/;

/** The largest image version a reference can name (nine digits). */
export const MAX_IMAGE_VERSION = 999_999_999;

/** Lines are lowercase names, usable as a directory and a unit name. */
export function isValidLine(line: string): boolean {
  return LINE_RE.test(line);
}

export function assertValidLine(line: string): string {
  if (!isValidLine(line)) {
    throw new GildError("GILD_IMAGE_NAME_INVALID", `invalid image line name "${line}"`, {
      hint: "use lowercase letters, digits and '-', starting with a letter (at most 63 characters)",
    });
  }
  return line;
}

/** Parse `php@3`. */
export function parseImageRef(text: string): ImageRef {
  const at = text.lastIndexOf("@");
  if (at <= 0) {
    throw new GildError("GILD_IMAGE_NAME_INVALID", `"${text}" is not an image version`, {
      hint: "write an image version as line@version, for example php@3",
    });
  }
  const line = assertValidLine(text.slice(0, at));
  const versionText = text.slice(at + 1);
  if (!/^[1-9][0-9]{0,8}$/.test(versionText)) {
    throw new GildError("GILD_IMAGE_NAME_INVALID", `"${text}" has no valid version number`, {
      hint: "versions are positive integers: php@1, php@2, ...",
    });
  }
  return { line, version: Number(versionText) };
}

/** Parse `php` or `php@3`; the version is undefined when absent. */
export function parseImageSelector(text: string): { line: string; version: number | undefined } {
  if (!text.includes("@")) return { line: assertValidLine(text), version: undefined };
  return parseImageRef(text);
}

export function formatImageRef(ref: ImageRef): string {
  return `${ref.line}@${ref.version}`;
}

/**
 * What a line holds: `os`, a root filesystem apps run on (an image), or `code`, an app's files mounted
 * read-only into its containers. Both are versioned, shipped and verified alike, under one path
 * (images/<line>/<version>); line names are one namespace, so a name is never both.
 */
export type LineKind = "os" | "code";
export const LINE_KINDS: readonly LineKind[] = ["os", "code"];

/** Status of an image version: new, proven by a rollout, or failed a rollout. */
export type ImageStatus = "candidate" | "stable" | "bad";

/** How a version came to be. */
export type ImageOrigin =
  | { kind: "dir"; path: string }
  | { kind: "debootstrap"; suite: string; include: string[]; mirror: string }
  | { kind: "update"; from: number; command: string[] }
  | { kind: "received"; uuid: string };

/** One version of an image line as a pool knows it. */
export interface ImageVersionInfo {
  line: string;
  version: number;
  /** What the line holds; "os" for versions made before lines had kinds, and for received copies. */
  kind: LineKind;
  /** uuid of the read-only subvolume. */
  uuid: string;
  /** For a received copy: the uuid of the subvolume it was sent from; null for locally made versions. */
  receivedUuid: string | null;
  /** Parent version this one was made from (update), or null. */
  parent: number | null;
  createdAt: string;
  /** Bytes referenced by the subvolume (du-style), or null when unknown. */
  sizeBytes: number | null;
  origin: ImageOrigin | null;
  createdBy: string | null;
}
