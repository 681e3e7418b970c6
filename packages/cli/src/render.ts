import { formatBytes, formatDuration, type SerializedError, toGildError } from "@gild/core";

/** A column of a human table: a header and how to show a row's value. */
export interface Column<T> {
  header: string;
  value: (row: T) => string | number | null | undefined;
  align?: "left" | "right";
}

export interface RenderStreams {
  stdout: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  stderr: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
}

const defaultStreams = (): RenderStreams => ({ stdout: process.stdout, stderr: process.stderr });

/** Align rows under headers, two spaces apart. */
export function formatTable<T>(rows: readonly T[], columns: readonly Column<T>[]): string {
  const cells = rows.map((row) => columns.map((c) => String(c.value(row) ?? "-")));
  const widths = columns.map((c, i) =>
    Math.max(c.header.length, ...cells.map((r) => (r[i] as string).length)),
  );
  const line = (values: string[]) =>
    values
      .map((v, i) =>
        columns[i]?.align === "right" ? v.padStart(widths[i] as number) : v.padEnd(widths[i] as number),
      )
      .join("  ")
      .trimEnd();
  return [line(columns.map((c) => c.header)), ...cells.map(line)].join("\n");
}

/** `[#####.....]  45%  1.2 GiB / 2.6 GiB  80 MiB/s  ETA 18s` */
export function formatProgress(done: number, total: number, rate: number, width = 24): string {
  const fraction = total > 0 ? Math.min(1, done / total) : 0;
  const filled = Math.round(fraction * width);
  const eta = rate > 0 && total > done ? formatDuration(((total - done) / rate) * 1000) : "-";
  return `[${"#".repeat(filled)}${".".repeat(width - filled)}] ${String(Math.floor(fraction * 100)).padStart(3)}%  ${formatBytes(done)} / ${formatBytes(total)}  ${formatBytes(rate)}/s  ETA ${eta}`;
}

/**
 * The one place the CLI prints. Command handlers return data; this turns it into text or JSON on
 * stdout, and puts progress, notes and errors on stderr.
 */
export class Renderer {
  readonly json: boolean;
  private readonly streams: RenderStreams;
  private liveLines = 0;

  constructor(options: { json?: boolean; streams?: RenderStreams } = {}) {
    this.json = options.json ?? false;
    this.streams = options.streams ?? defaultStreams();
  }

  /** Print a command's result: the value as JSON with --json, else its human form. */
  result(value: unknown, human: () => string): void {
    this.clearLive();
    if (this.json) this.streams.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
    else {
      const text = human();
      if (text.length > 0) this.streams.stdout.write(`${text}\n`);
    }
  }

  /** A note for the operator (stderr, so stdout stays parseable). */
  note(message: string): void {
    this.clearLive();
    this.streams.stderr.write(`${message}\n`);
  }

  /** One line of a long-running command's own output, indented. */
  output(line: string): void {
    this.clearLive();
    this.streams.stderr.write(`  | ${line}\n`);
  }

  /** Redraw a block of live lines in place (progress bars); plain appended lines when not a TTY. */
  live(lines: readonly string[]): void {
    const stderr = this.streams.stderr;
    if (!stderr.isTTY) return;
    if (this.liveLines > 0) stderr.write(`\x1b[${this.liveLines}A`);
    for (const line of lines) stderr.write(`\x1b[2K${line}\n`);
    this.liveLines = lines.length;
  }

  /** Forget the live block, leaving it on screen. */
  endLive(): void {
    this.liveLines = 0;
  }

  private clearLive(): void {
    if (this.liveLines === 0) return;
    const stderr = this.streams.stderr;
    stderr.write(`\x1b[${this.liveLines}A`);
    for (let i = 0; i < this.liveLines; i++) stderr.write("\x1b[2K\n");
    stderr.write(`\x1b[${this.liveLines}A`);
    this.liveLines = 0;
  }

  /** Print an error as message + hint (or as JSON {error} with --json). */
  error(err: unknown): void {
    this.clearLive();
    const gild = toGildError(err);
    if (this.json) {
      const out: { error: SerializedError } = { error: gild.toJSON() };
      this.streams.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    }
    this.streams.stderr.write(`error: ${gild.message} [${gild.code}]\n`);
    if (gild.hint) this.streams.stderr.write(`hint: ${gild.hint}\n`);
    const problems = gild.details?.problems;
    if (Array.isArray(problems)) {
      for (const p of problems as Array<{ path?: string; message?: string }>) {
        this.streams.stderr.write(`  - ${p.path ?? ""}: ${p.message ?? ""}\n`);
      }
    }
  }
}
