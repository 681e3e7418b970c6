import type { ProgressUpdate, RolloutView, SessionView } from "@gild/api-client";
import type { RolloutEvent, RolloutVerb } from "@gild/core";
import { useEffect, useRef, useState } from "preact/hooks";
import { mutate } from "../api.js";
import { bytes, clock, countdown, span } from "../format.js";
import { useNow } from "../hooks.js";
import { Failure, State } from "./common.js";

// The same list as core's TERMINAL_ROLLOUT_STATES (core is imported for types only: it is Node code).
const TERMINAL: ReadonlySet<string> = new Set(["succeeded", "failed", "aborted", "rolled-back"]);

/** What each verb does, for the confirmation, and the states the controller accepts it in. */
const VERBS: Record<RolloutVerb, { label: string; says: string; when: (r: RolloutView) => boolean }> = {
  pause: {
    label: "Pause",
    says: "No new host is switched and every clock stops until you resume.",
    when: (r) => r.state === "running" || r.state === "awaiting-promotion",
  },
  resume: {
    label: "Resume",
    says: "The rollout goes on where it stopped; after a failed wave, its failed hosts are accepted.",
    when: (r) => r.state === "paused",
  },
  promote: {
    label: "Promote",
    says: "The next wave starts now, without waiting for the bake.",
    when: (r) => r.state === "awaiting-promotion" || (r.state === "running" && r.phase === "baking"),
  },
  abort: {
    label: "Abort",
    says: "No host is switched any more; hosts already switched stay as they are (roll back to undo them).",
    when: (r) => !TERMINAL.has(r.state) && r.state !== "rolling-back",
  },
  rollback: {
    label: "Roll back",
    says: "Every host this rollout switched goes back to its previous generation (no download, no canary, no bake).",
    when: (r) => ["succeeded", "failed", "aborted", "paused"].includes(r.state),
  },
};

type StreamMessage =
  | { type: "snapshot"; rollout: RolloutView; events: RolloutEvent[] }
  | { type: "rollout"; rollout: RolloutView }
  | { type: "event"; event: RolloutEvent }
  | { type: "progress"; hostId: string; progress: ProgressUpdate };

const MAX_EVENTS = 200;

/**
 * One rollout, live: the controller's event stream (the feed `gild rollout status --watch` follows)
 * moves it without a reload; an operator's verbs each ask for a confirmation first.
 */
export function RolloutPage({ id, session }: { id: string; session: SessionView }) {
  const [view, setView] = useState<RolloutView | undefined>(undefined);
  const [events, setEvents] = useState<RolloutEvent[]>([]);
  const [progress, setProgress] = useState<Record<string, ProgressUpdate>>({});
  const [live, setLive] = useState<"connecting" | "live" | "ended" | "lost">("connecting");
  // Bumped to follow the stream again (a rollback of an ended rollout makes it move again).
  const [follow, setFollow] = useState(0);
  const [error, setError] = useState<Error | undefined>(undefined);
  const [asking, setAsking] = useState<RolloutVerb | null>(null);
  const now = useNow(1000);

  useEffect(() => {
    const source = new EventSource(`/v1/rollouts/${encodeURIComponent(id)}/events`);
    setLive("connecting");
    const ended = (r: RolloutView) => {
      if (!TERMINAL.has(r.state)) return;
      // The controller ends the stream here; EventSource would connect again by itself.
      source.close();
      setLive("ended");
    };
    source.onopen = () => setLive("live");
    source.onmessage = (message: MessageEvent<string>) => {
      const data = JSON.parse(message.data) as StreamMessage;
      switch (data.type) {
        case "snapshot":
          setView(data.rollout);
          setEvents(data.events.slice(-MAX_EVENTS));
          setProgress({});
          setError(undefined);
          ended(data.rollout);
          break;
        case "rollout":
          setView(data.rollout);
          ended(data.rollout);
          break;
        case "event":
          setEvents((list) => [...list, data.event].slice(-MAX_EVENTS));
          break;
        case "progress":
          setProgress((p) => ({ ...p, [data.hostId]: data.progress }));
          break;
      }
    };
    source.onerror = () => {
      // Closed for good (a 401 or 404 answer) or reconnecting by itself (a dropped connection).
      if (source.readyState === EventSource.CLOSED) {
        setLive((l) => (l === "ended" ? l : "lost"));
        setError(
          (e) =>
            e ?? new Error("the live stream of this rollout was refused: sign in again, or check its id"),
        );
      } else setLive("connecting");
    };
    return () => source.close();
  }, [id, follow]);

  const run = async (verb: RolloutVerb) => {
    setAsking(null);
    try {
      const answer = await mutate(
        "POST /v1/rollouts/:id/:verb",
        `/v1/rollouts/${encodeURIComponent(id)}/${verb}`,
        {},
      );
      setView(answer);
      setError(undefined);
      if (!TERMINAL.has(answer.state) && live === "ended") setFollow((f) => f + 1);
    } catch (err) {
      setError(err instanceof Error ? err : new Error(String(err)));
    }
  };

  if (!view)
    return (
      <section>
        <h1>Rollout {id}</h1>
        <Failure error={error} />
        {!error && <p class="loading">Loading…</p>}
      </section>
    );

  const names = new Map(view.waves.flatMap((w) => w.hosts.map((h) => [h.hostId, h.name] as const)));
  const mayDrive = session.role !== "viewer";
  const clocks = view.clocks;
  return (
    <section class="rollout" data-rollout-id={view.id} data-rollout-state={view.state} data-live={live}>
      <h1>
        Rollout {view.id} <small>{view.image}</small>
      </h1>
      <p class="summary">
        <State value={view.state} /> <span class="phase">{view.phase}</span>,{" "}
        {waveName(view, view.currentWave)} ({view.waves.length} waves in all)
        {view.versionStatus && (
          <>
            ; {view.image} is <State value={view.versionStatus} />
          </>
        )}
        <span class={`live live-${live}`} title="updates from the controller's event stream">
          {live === "live"
            ? "● live"
            : live === "ended"
              ? "ended"
              : live === "lost"
                ? "not live"
                : "connecting…"}
        </span>
      </p>
      <p class="meta">
        Started {clock(view.createdAt)} by {view.createdBy ?? "?"}
        {view.finishedAt && `, ended ${clock(view.finishedAt)}`}
        {view.apps && `; apps ${view.apps.join(", ")}`}
      </p>
      {view.reason && (
        <p class="reason">
          {view.reason} {view.reasonCode && <code>[{view.reasonCode}]</code>}
        </p>
      )}
      <ul class="clocks">
        {clocks.bakeUntil && view.state === "running" && (
          <li data-clock="bake">Bake ends {countdown(clocks.bakeUntil, now)}</li>
        )}
        {clocks.progressDeadlineAt && view.state === "running" && view.phase !== "baking" && (
          <li data-clock="progress-deadline">
            Progress deadline {countdown(clocks.progressDeadlineAt, now)}
          </li>
        )}
        {clocks.pausedAt && (
          <li data-clock="paused">Paused for {span(now - clocks.pausedAt)} (clocks stopped)</li>
        )}
      </ul>
      <Failure error={error} />
      {mayDrive && (
        <div class="actions">
          {(Object.keys(VERBS) as RolloutVerb[]).map((verb) => (
            <button
              key={verb}
              type="button"
              data-verb={verb}
              class={verb === "abort" || verb === "rollback" ? "danger" : ""}
              disabled={!VERBS[verb].when(view)}
              onClick={() => setAsking(verb)}
            >
              {VERBS[verb].label}
            </button>
          ))}
        </div>
      )}
      {asking && (
        <Confirm
          title={`${VERBS[asking].label} rollout ${view.id}?`}
          says={VERBS[asking].says}
          action={VERBS[asking].label}
          onConfirm={() => run(asking)}
          onCancel={() => setAsking(null)}
        />
      )}
      {view.failureClusters.length > 0 && (
        <div class="clusters">
          <h2>Failures in common</h2>
          <ul>
            {view.failureClusters.map((c) => (
              <li key={`${c.attribute}=${c.value}`}>{c.summary}</li>
            ))}
          </ul>
        </div>
      )}
      {view.waves.map((wave) => (
        <div
          key={wave.index}
          class={`wave${wave.index === view.currentWave && !TERMINAL.has(view.state) ? " current" : ""}`}
          data-wave={wave.index}
        >
          <h2>
            {capitalized(waveName(view, wave.index))}{" "}
            <small>
              {wave.hosts.filter((h) => h.state === "healthy").length} of {wave.hosts.length} healthy
            </small>
          </h2>
          <table>
            <thead>
              <tr>
                <th>Host</th>
                <th>State</th>
                <th>From</th>
                <th>Transfer</th>
                <th>Deadline</th>
                <th>Why</th>
              </tr>
            </thead>
            <tbody>
              {wave.hosts.map((h) => {
                const p = progress[h.hostId] ?? h.progress;
                return (
                  <tr key={h.hostId} data-host={h.name} data-state={h.state}>
                    <td>
                      {h.name} {!h.online && <State value="offline" />}
                    </td>
                    <td>
                      <State value={h.state} />
                    </td>
                    <td>{h.fromVersion === null ? "–" : `${view.line}@${h.fromVersion}`}</td>
                    <td>
                      {p && (h.state === "fetching" || p.bytesDone < p.bytesTotal) ? (
                        <>
                          <progress value={p.bytesDone} max={Math.max(p.bytesTotal, 1)} />{" "}
                          {bytes(p.bytesDone)} of {bytes(p.bytesTotal)}
                          {p.rateBytesPerSecond > 0 && `, ${bytes(p.rateBytesPerSecond)}/s`}
                        </>
                      ) : (
                        "–"
                      )}
                    </td>
                    <td>
                      {h.deadlineAt && ["switching", "verifying", "rolling-back"].includes(h.state)
                        ? countdown(h.deadlineAt, now)
                        : "–"}
                    </td>
                    <td>{h.reason ?? ""}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      ))}
      <h2>Events</h2>
      <ol class="events" reversed>
        {[...events].reverse().map((e, i) => (
          <li key={`${e.at}-${events.length - i}`} data-kind={e.kind}>
            <time>{new Date(e.at).toLocaleTimeString()}</time>{" "}
            {e.hostId && !e.message.includes(names.get(e.hostId) ?? e.hostId) && (
              <b>{names.get(e.hostId) ?? e.hostId} </b>
            )}
            {e.message}
          </li>
        ))}
      </ol>
    </section>
  );
}

/** "canary", "wave 1", ...: the names the controller's events use. */
function waveName(view: RolloutView, index: number): string {
  const wave = view.waves[Math.min(index, view.waves.length - 1)];
  return wave?.canary ? "canary" : `wave ${wave?.index ?? index}`;
}

function capitalized(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** A modal confirmation (the native <dialog>, so focus and Escape behave). */
function Confirm(props: {
  title: string;
  says: string;
  action: string;
  onConfirm: () => void;
  onCancel: () => void;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const dialog = ref.current;
    if (dialog && !dialog.open) dialog.showModal();
  }, []);
  return (
    <dialog ref={ref} class="confirm" onCancel={props.onCancel}>
      <h2>{props.title}</h2>
      <p>{props.says}</p>
      <div class="actions">
        <button type="button" onClick={props.onCancel}>
          Cancel
        </button>
        <button type="button" class="confirm-action" data-confirm="yes" onClick={props.onConfirm}>
          {props.action}
        </button>
      </div>
    </dialog>
  );
}
