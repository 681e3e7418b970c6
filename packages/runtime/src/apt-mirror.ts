import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";

const FALLBACK_MIRROR = "http://deb.debian.org/debian";

// The main Debian archive on some mirror: ".../debian", not debian-security or a vendor's repository.
function isDebianArchive(uri: string): boolean {
  return /^https?:\/\/[^\s]+\/debian\/?$/.test(uri);
}

function debianUriFromList(text: string): string | undefined {
  for (const raw of text.split("\n")) {
    const line = raw.replace(/#.*/, "").trim();
    // deb [options] uri suite components
    const match = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)/.exec(line);
    if (match && isDebianArchive(match[1] as string) && !/security/.test(match[2] as string)) return match[1];
  }
  return undefined;
}

function debianUriFromDeb822(text: string): string | undefined {
  for (const stanza of text.split(/\n\s*\n/)) {
    const types = /^Types:\s*(.*)$/im.exec(stanza)?.[1] ?? "";
    const uris = /^URIs:\s*(.*)$/im.exec(stanza)?.[1]?.trim().split(/\s+/) ?? [];
    const suites = /^Suites:\s*(.*)$/im.exec(stanza)?.[1] ?? "";
    if (!/\bdeb\b/.test(types) || /security/.test(suites)) continue;
    const uri = uris.find(isDebianArchive);
    if (uri) return uri;
  }
  return undefined;
}

/**
 * The Debian mirror the machine's apt uses (first non-security `deb` source), so debootstrap fetches
 * from where this machine is allowed to; deb.debian.org when none is configured.
 */
export async function aptMirror(root = "/"): Promise<string> {
  const list = await readFile(join(root, "etc/apt/sources.list"), "utf8").catch(() => "");
  const fromList = debianUriFromList(list);
  if (fromList) return fromList;
  const dir = join(root, "etc/apt/sources.list.d");
  const names = (await readdir(dir).catch(() => [] as string[])).sort();
  for (const name of names) {
    const text = await readFile(join(dir, name), "utf8").catch(() => "");
    const uri = name.endsWith(".sources")
      ? debianUriFromDeb822(text)
      : name.endsWith(".list")
        ? debianUriFromList(text)
        : undefined;
    if (uri) return uri;
  }
  return FALLBACK_MIRROR;
}
