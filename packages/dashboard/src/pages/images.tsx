import { get } from "../api.js";
import { bytes, clock } from "../format.js";
import { usePolled } from "../hooks.js";
import { Section, State } from "./common.js";

/** Every version of every line: status, size, parent, who made it, which hosts hold it. */
export function ImagesPage() {
  const { data, error } = usePolled(() => get("GET /v1/images", "/v1/images?hosts=1"));
  return (
    <Section title="Images" error={error} loaded={data !== undefined}>
      {data && data.images.length === 0 && (
        <p>
          No images yet: <code>gild image create</code>.
        </p>
      )}
      {data && data.images.length > 0 && (
        <table class="images">
          <thead>
            <tr>
              <th>Version</th>
              <th>Kind</th>
              <th>Status</th>
              <th>Size</th>
              <th>Parent</th>
              <th>Made</th>
              <th>Hosts</th>
            </tr>
          </thead>
          <tbody>
            {data.images.map((i) => (
              <tr key={`${i.line}@${i.version}`} data-image={`${i.line}@${i.version}`}>
                <td>
                  {i.line}@{i.version}
                </td>
                <td>{i.kind}</td>
                <td>
                  <State value={i.status} />
                </td>
                <td>{bytes(i.sizeBytes)}</td>
                <td>{i.parent === null ? "–" : `${i.line}@${i.parent}`}</td>
                <td title={i.origin ? JSON.stringify(i.origin) : ""}>
                  {clock(i.createdAt)}
                  {i.createdBy ? ` by ${i.createdBy}` : ""}
                </td>
                <td>{i.hosts?.join(", ") || "–"}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </Section>
  );
}
