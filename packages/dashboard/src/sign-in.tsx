import type { SessionView } from "@gild/api-client";
import { useState } from "preact/hooks";
import { ApiError, mutate } from "./api.js";

/** The sign-in form: a user's token (gild user add) is traded for a session cookie and never kept. */
export function SignIn({ onSignedIn }: { onSignedIn: (s: SessionView) => void }) {
  const [token, setToken] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const session = await mutate("POST /v1/session", "/v1/session", { token: token.trim() });
      setToken("");
      onSignedIn(session);
    } catch (err) {
      setError(err instanceof ApiError ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="sign-in" onSubmit={submit}>
      <h1>gild</h1>
      <label>
        Your token
        <input
          name="token"
          type="password"
          autocomplete="off"
          required
          value={token}
          onInput={(e) => setToken((e.target as HTMLInputElement).value)}
        />
      </label>
      <p class="hint">
        An admin makes it with <code>gild user add &lt;name&gt; --role viewer|operator|admin</code>.
      </p>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      <button type="submit" disabled={busy}>
        Sign in
      </button>
    </form>
  );
}
