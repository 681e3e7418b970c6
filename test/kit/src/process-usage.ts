import { readdirSync, readFileSync } from "node:fs";

/** Linux clock ticks per second (USER_HZ), which /proc/<pid>/stat counts CPU time in. */
const TICKS_PER_SECOND = 100;

/** What /proc says about one process at one moment. */
export interface ProcessUsage {
  at: number;
  /** Resident set size now, bytes (VmRSS). */
  rssBytes: number;
  /** Peak resident set size since start, bytes (VmHWM). */
  peakRssBytes: number;
  /** User + system CPU seconds since start. */
  cpuSeconds: number;
  threads: number;
  /** Bytes this process caused to be written to storage, and its write syscalls (/proc/<pid>/io). */
  writeBytes: number;
  writeSyscalls: number;
  openFds: number;
  /** Child processes it has now (the controller runs btrfs for image metadata and streams). */
  children: number;
}

function kib(status: string, field: string): number {
  const value = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1];
  return value === undefined ? Number.NaN : Number(value) * 1024;
}

function ioField(io: string, field: string): number {
  const value = new RegExp(`^${field}:\\s+(\\d+)`, "m").exec(io)?.[1];
  return value === undefined ? Number.NaN : Number(value);
}

/**
 * Read a process's memory, CPU, I/O and fd counts from /proc; undefined when it is gone. With
 * `fds: false` its open files are not counted (openFds is NaN): counting lists /proc/<pid>/fd, one entry
 * per file, which for a controller holding 10,000 connections takes this thread about 20 ms.
 */
export function readProcessUsage(pid: number, options: { fds?: boolean } = {}): ProcessUsage | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name, which may itself hold spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = Number(fields[11]) + Number(fields[12]);
    const io = readFileSync(`/proc/${pid}/io`, "utf8");
    let openFds = Number.NaN;
    if (options.fds !== false) {
      try {
        openFds = readdirSync(`/proc/${pid}/fd`).length;
      } catch {
        // A process that just exited has no fd directory any more.
      }
    }
    let children = Number.NaN;
    try {
      const list = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim();
      children = list === "" ? 0 : list.split(/\s+/).length;
    } catch {
      // Kernels without CONFIG_PROC_CHILDREN: unknown.
    }
    return {
      at: Date.now(),
      rssBytes: kib(status, "VmRSS"),
      peakRssBytes: kib(status, "VmHWM"),
      cpuSeconds: ticks / TICKS_PER_SECOND,
      threads: Number(/^Threads:\s+(\d+)/m.exec(status)?.[1] ?? Number.NaN),
      writeBytes: ioField(io, "write_bytes"),
      writeSyscalls: ioField(io, "syscw"),
      openFds,
      children,
    };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT" || (err as NodeJS.ErrnoException).code === "ESRCH")
      return undefined;
    throw err;
  }
}

/**
 * Open files are counted at most this often by a sampler (and in its first and last sample): the count
 * blocks this process's event loop for a while when the process holds thousands (readProcessUsage), and
 * a load tool that stalls is late with everything it timestamps.
 */
const FDS_EVERY_MS = 2000;

/** Samples a process every `intervalMs` until stopped; keeps the series for peaks and averages. */
export class UsageSampler {
  readonly samples: ProcessUsage[] = [];
  private readonly timer: NodeJS.Timeout;
  private fdsCountedAt = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly pid: number,
    intervalMs = 500,
  ) {
    this.sample(true);
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
  }

  /** One sample now; open files are counted when `countFds`, or when the last count is FDS_EVERY_MS old. */
  sample(countFds = false): ProcessUsage | undefined {
    const now = Date.now();
    const fds = countFds || now - this.fdsCountedAt >= FDS_EVERY_MS;
    const usage = readProcessUsage(this.pid, { fds });
    if (fds) this.fdsCountedAt = now;
    if (usage) this.samples.push(usage);
    return usage;
  }

  stop(): ProcessUsage | undefined {
    clearInterval(this.timer);
    return this.sample(true);
  }

  /** Highest sampled value of a field between two times (inclusive). */
  max(
    field: "openFds" | "threads" | "rssBytes" | "children",
    from = 0,
    to = Number.POSITIVE_INFINITY,
  ): number {
    let best = Number.NaN;
    for (const s of this.samples) {
      // A sample that did not count (openFds) says nothing about the peak.
      if (s.at < from || s.at > to || Number.isNaN(s[field])) continue;
      if (!(s[field] <= best)) best = s[field];
    }
    return best;
  }
}
