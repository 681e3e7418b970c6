import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { aptStateStamp, parseAptSimulation, rebootRequired } from "@gild/runtime";
import { afterEach, describe, expect, it } from "vitest";

// The parsing of `apt-get -s dist-upgrade` on output as apt 2.6 (Debian 12) and 2.4 (Ubuntu 22.04)
// print it; the lines below were recorded on such machines. The simulation itself runs for real in
// the e2e host listing test (test/e2e/api-hosts.test.ts).

const DEBIAN_12 = `NOTE: This is only a simulation!
      apt-get needs root privileges for real execution.
      Keep also in mind that locking is deactivated,
      so don't depend on the relevance to the real current situation!
Reading package lists...
Building dependency tree...
Reading state information...
Calculating upgrade...
The following NEW packages will be installed:
  linux-image-6.1.0-41-amd64
The following packages will be upgraded:
  base-files bash libgcrypt20 libgcrypt20-dev liblzma-dev linux-image-amd64
6 upgraded, 1 newly installed, 0 to remove and 0 not upgraded.
Inst base-files [12.4+deb12u11] (12.4+deb12u15 Debian:12.15/oldstable [amd64])
Conf base-files (12.4+deb12u15 Debian:12.15/oldstable [amd64])
Inst bash [5.2.15-2+b8] (5.2.15-2+b13 Debian:12.15/oldstable [amd64])
Inst libgcrypt20-dev [1.10.1-3] (1.10.1-3+deb12u1 Debian:12.15/oldstable, Debian-Security:12/oldstable-security [amd64]) []
Inst libgcrypt20 [1.10.1-3] (1.10.1-3+deb12u1 Debian:12.15/oldstable, Debian-Security:12/oldstable-security [amd64])
Inst liblzma-dev [5.4.1-1] (5.4.1-1+deb12u2 Debian-Security:12/oldstable-security [amd64]) []
Inst linux-image-6.1.0-41-amd64 (6.1.158-1 Debian-Security:12/oldstable-security [amd64])
Inst linux-image-amd64 [6.1.140-1] (6.1.158-1 Debian-Security:12/oldstable-security [amd64])
Conf bash (5.2.15-2+b13 Debian:12.15/oldstable [amd64])
`;

const UBUNTU_2204 = `Reading package lists...
Building dependency tree...
Reading state information...
Calculating upgrade...
The following packages will be upgraded:
  libssl3 openssl tzdata
3 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.
Inst libssl3 [3.0.2-0ubuntu1.18] (3.0.2-0ubuntu1.19 Ubuntu:22.04/jammy-updates, Ubuntu:22.04/jammy-security [amd64])
Inst openssl [3.0.2-0ubuntu1.18] (3.0.2-0ubuntu1.19 Ubuntu:22.04/jammy-updates, Ubuntu:22.04/jammy-security [amd64])
Inst tzdata [2024a-0ubuntu0.22.04] (2025b-0ubuntu0.22.04 Ubuntu:22.04/jammy-updates [all])
Conf libssl3 (3.0.2-0ubuntu1.19 Ubuntu:22.04/jammy-updates, Ubuntu:22.04/jammy-security [amd64])
`;

describe("parseAptSimulation", () => {
  it.each([
    ["Debian 12, security updates from Debian-Security and a new kernel package", DEBIAN_12, 7, 5],
    ["Ubuntu 22.04, security updates also in -updates", UBUNTU_2204, 3, 2],
    [
      "an up-to-date host",
      "Reading package lists...\nCalculating upgrade...\n0 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.\n",
      0,
      0,
    ],
    ["no output", "", 0, 0],
    // A suite whose name only contains "security" is not a security suite; a version is not a suite.
    [
      "look-alike names",
      "Inst a [1] (2 Vendor:1/security-tools [amd64])\nInst b [1] (2-security Debian:12/stable [amd64])\n",
      2,
      0,
    ],
  ])("%s", (_what, output, total, security) => {
    expect(parseAptSimulation(output)).toEqual({ total, security });
  });

  it("counts only Inst lines (not Conf, Remv or the summary)", () => {
    const output = "Remv oldpkg [1.0]\nConf base-files (12 Debian-Security:12/stable-security [amd64])\n";
    expect(parseAptSimulation(output)).toEqual({ total: 0, security: 0 });
  });
});

describe("rebootRequired and aptStateStamp", () => {
  const dirs: string[] = [];
  const root = () => {
    const dir = mkdtempSync(join(tmpdir(), "gild-host-updates-"));
    dirs.push(dir);
    mkdirSync(join(dir, "run"));
    return dir;
  };
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it("reads Debian's flag and the packages that set it, once each", async () => {
    const dir = root();
    expect(await rebootRequired(dir)).toEqual({ required: false, packages: [] });
    writeFileSync(join(dir, "run/reboot-required"), "*** System restart required ***\n");
    expect(await rebootRequired(dir)).toEqual({ required: true, packages: [] });
    writeFileSync(join(dir, "run/reboot-required.pkgs"), "linux-image-6.1.0-41-amd64\nlibc6\nlibc6\n");
    expect(await rebootRequired(dir)).toEqual({
      required: true,
      packages: ["linux-image-6.1.0-41-amd64", "libc6"],
    });
  });

  it("stamps apt's state: the same files give the same stamp, a changed one another", async () => {
    const dir = root();
    mkdirSync(join(dir, "var/lib/dpkg"), { recursive: true });
    writeFileSync(join(dir, "var/lib/dpkg/status"), "Package: a\n");
    const first = await aptStateStamp(dir);
    expect(await aptStateStamp(dir)).toBe(first);
    writeFileSync(join(dir, "var/lib/dpkg/status"), "Package: a\n\nPackage: b\n");
    expect(await aptStateStamp(dir)).not.toBe(first);
  });
});
