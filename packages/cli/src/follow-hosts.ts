import type { Renderer } from "./render.js";

/** One host's latest event in a per-host NDJSON answer (push, deploy, rollback). */
export interface HostEvent {
  host: string;
  state: string;
}

/**
 * Follow a per-host NDJSON answer: a note whenever a host's state changes (unless `quiet` says the new
 * state is shown only on the live lines), live lines for the hosts `isLive` picks, and the final
 * result once the stream ends.
 */
export async function followHosts<E extends HostEvent, R>(
  render: Renderer,
  stream: AsyncGenerator<E, R>,
  view: { line: (event: E) => string; isLive: (event: E) => boolean; quiet?: (event: E) => boolean },
): Promise<R> {
  const latest = new Map<string, E>();
  for (;;) {
    const next = await stream.next();
    if (next.done) {
      render.endLive();
      return next.value;
    }
    const event = next.value;
    const before = latest.get(event.host);
    latest.set(event.host, event);
    if (!render.json && before?.state !== event.state && !view.quiet?.(event)) render.note(view.line(event));
    render.live([...latest.values()].filter(view.isLive).map(view.line));
  }
}
