/** The longest delay setTimeout honours: Node clamps anything longer to 1 ms (and warns). */
export const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;

export interface LongTimer {
  cancel(): void;
}

/**
 * setTimeout for any delay: a delay beyond MAX_TIMER_DELAY_MS (24.8 days; a bake or a deadline may be
 * longer) is waited out in steps, re-arming until it is over, instead of firing after 1 ms. The timer
 * does not keep the process alive (unref), like the rollout clocks it serves.
 */
export function setLongTimeout(callback: () => void, delayMs: number): LongTimer {
  let handle: NodeJS.Timeout | undefined;
  let remaining = Math.max(0, delayMs);
  const arm = () => {
    const step = Math.min(remaining, MAX_TIMER_DELAY_MS);
    remaining -= step;
    handle = setTimeout(remaining > 0 ? arm : callback, step);
    handle.unref?.();
  };
  arm();
  return { cancel: () => clearTimeout(handle) };
}
