import { get } from "../api.js";
import { clock } from "../format.js";
import { usePolled } from "../hooks.js";
import { Section, State } from "./common.js";

/** Rollouts, newest first; each links to its live page. */
export function RolloutsPage() {
  const { data, error } = usePolled(() => get("GET /v1/rollouts", "/v1/rollouts?limit=100"));
  return (
    <Section title="Rollouts" error={error} loaded={data !== undefined}>
      {data && data.rollouts.length === 0 && (
        <p>
          No rollouts yet: <code>gild rollout start</code>.
        </p>
      )}
      {data && data.rollouts.length > 0 && (
        <table class="rollouts">
          <thead>
            <tr>
              <th>Rollout</th>
              <th>Image</th>
              <th>State</th>
              <th>Wave</th>
              <th>Started</th>
              <th>By</th>
            </tr>
          </thead>
          <tbody>
            {data.rollouts.map((r) => (
              <tr key={r.id} data-rollout={r.id}>
                <td>
                  <a href={`#/rollouts/${encodeURIComponent(r.id)}`}>{r.id}</a>
                </td>
                <td>{r.image}</td>
                <td>
                  <State value={r.state} />
                </td>
                <td>
                  {Math.min(r.currentWave + 1, r.waves.length)} of {r.waves.length}
                </td>
                <td>{clock(r.createdAt)}</td>
                <td>{r.createdBy ?? "–"}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </Section>
  );
}
