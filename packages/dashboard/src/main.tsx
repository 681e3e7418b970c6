import type { SessionView } from "@gild/api-client";
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { get, mutate, rememberSession } from "./api.js";
import { useHashRoute } from "./hooks.js";
import { AppsPage } from "./pages/apps.js";
import { AuditPage } from "./pages/audit.js";
import { FleetPage } from "./pages/fleet.js";
import { ImagesPage } from "./pages/images.js";
import { RolloutPage } from "./pages/rollout.js";
import { RolloutsPage } from "./pages/rollouts.js";
import { SignIn } from "./sign-in.js";
import "./style.css";

const PAGES = [
  ["fleet", "Fleet"],
  ["images", "Images"],
  ["apps", "Apps"],
  ["rollouts", "Rollouts"],
  ["audit", "Audit"],
] as const;

function Page({ route, session }: { route: string[]; session: SessionView }) {
  const [page, id] = route;
  switch (page) {
    case "images":
      return <ImagesPage />;
    case "apps":
      return <AppsPage />;
    case "rollouts":
      return id ? <RolloutPage id={id} session={session} /> : <RolloutsPage />;
    case "audit":
      return <AuditPage />;
    default:
      return <FleetPage />;
  }
}

function App() {
  // undefined: not known yet; null: signed out.
  const [session, setSession] = useState<SessionView | null | undefined>(undefined);
  const route = useHashRoute();
  const signedIn = (s: SessionView | null) => {
    rememberSession(s);
    setSession(s);
  };
  useEffect(() => {
    // No session (401), or none that still holds: the sign-in form.
    get("GET /v1/session", "/v1/session").then(signedIn, () => signedIn(null));
  }, []);
  if (session === undefined) return <p class="loading">Loading…</p>;
  if (session === null) return <SignIn onSignedIn={signedIn} />;
  const signOut = async () => {
    await mutate("DELETE /v1/session", "/v1/session").catch(() => undefined);
    signedIn(null);
  };
  const current = route[0] ?? "fleet";
  return (
    <>
      <header>
        <span class="brand">gild</span>
        <nav>
          {PAGES.map(([key, title]) => (
            <a key={key} href={`#/${key}`} class={current === key ? "current" : ""}>
              {title}
            </a>
          ))}
        </nav>
        <span class="who" data-role={session.role}>
          {session.user} ({session.role})
        </span>
        <button type="button" class="link" onClick={signOut}>
          Sign out
        </button>
      </header>
      <main>
        <Page route={route} session={session} />
      </main>
    </>
  );
}

const root = document.getElementById("app");
if (root) render(<App />, root);
