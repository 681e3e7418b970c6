import { useEffect, useState } from "preact/hooks";
import type { ApiError } from "./api.js";

/** The current time, ticking every `everyMs`: what countdowns and "ago" render with. */
export function useNow(everyMs = 1000): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), everyMs);
    return () => clearInterval(timer);
  }, [everyMs]);
  return now;
}

export interface Loaded<T> {
  data: T | undefined;
  error: ApiError | Error | undefined;
}

/** Load with `load` now and again every `everyMs` (the list pages), keeping the last answer on an error. */
export function usePolled<T>(load: () => Promise<T>, everyMs = 5000, key = ""): Loaded<T> {
  const [state, setState] = useState<Loaded<T>>({ data: undefined, error: undefined });
  // `load` is a new closure each render: `key` says when what it loads changed.
  useEffect(() => {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const tick = async () => {
      try {
        const data = await load();
        if (!stopped) setState({ data, error: undefined });
      } catch (err) {
        if (!stopped) setState((s) => ({ data: s.data, error: err as Error }));
      }
      if (!stopped) timer = setTimeout(tick, everyMs);
    };
    void tick();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [everyMs, key]);
  return state;
}

/** The page the hash names: "#/rollouts/r-1" -> ["rollouts", "r-1"]. */
export function useHashRoute(): string[] {
  const parse = () =>
    window.location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  const [route, setRoute] = useState(parse);
  useEffect(() => {
    const onChange = () => setRoute(parse());
    window.addEventListener("hashchange", onChange);
    return () => window.removeEventListener("hashchange", onChange);
  }, []);
  return route;
}
