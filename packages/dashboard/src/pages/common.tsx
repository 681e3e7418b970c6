import type { ComponentChildren } from "preact";
import { ApiError } from "../api.js";

/** What went wrong loading a page, with the controller's code and hint. */
export function Failure({ error }: { error: Error | undefined }) {
  if (!error) return null;
  return (
    <p class="error" role="alert">
      {error.message}
      {error instanceof ApiError && (
        <>
          {" "}
          <code>[{error.code}]</code>
          {error.hint && <span class="hint"> {error.hint}</span>}
        </>
      )}
    </p>
  );
}

/** A page's title, its error line and its body once loaded. */
export function Section(props: {
  title: string;
  error: Error | undefined;
  loaded: boolean;
  children: ComponentChildren;
}) {
  return (
    <section>
      <h1>{props.title}</h1>
      <Failure error={props.error} />
      {props.loaded ? props.children : !props.error && <p class="loading">Loading…</p>}
    </section>
  );
}

/** A state word with its colour class (online, healthy, failed, ...). */
export function State({ value }: { value: string }) {
  return <span class={`state state-${value}`}>{value}</span>;
}
