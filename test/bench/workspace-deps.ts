// The load tool speaks the real protocol with the real WebSocket library: @gild/protocol and ws, the
// two packages a real agent connects with. test/package.json does not list them (yet), so they are
// loaded at run time from @gild/agent's own dependencies, and typed here by what the bench uses.
// Once test/package.json lists "@gild/protocol" and "ws" (and test/tsconfig.json references
// packages/protocol), this file becomes two plain imports.
import { createRequire } from "node:module";
import { join } from "node:path";
import type { SecureContext } from "node:tls";
import { pathToFileURL } from "node:url";
import { findRepoRoot } from "@gild/testkit";
// Types only (erased at build time): the generated message shapes, without a runtime import.
import type * as Protocol from "../../packages/protocol/dist/index.js";

export type { Protocol };

/** The part of a `ws` client socket the fake agents use. */
export interface WsClient {
  readonly readyState: number;
  /** Bytes queued in user land, not yet handed to the socket. */
  readonly bufferedAmount: number;
  send(data: Uint8Array, cb?: (err?: Error) => void): void;
  close(code?: number, reason?: string): void;
  terminate(): void;
  on(event: "open", listener: () => void): this;
  on(event: "message", listener: (data: Buffer, isBinary: boolean) => void): this;
  on(event: "close", listener: (code: number, reason: Buffer) => void): this;
  on(event: "error", listener: (err: Error) => void): this;
  on(
    event: "unexpected-response",
    listener: (req: unknown, res: { statusCode?: number; resume(): void }) => void,
  ): this;
}

export interface WsClientOptions {
  headers: Record<string, string>;
  perMessageDeflate: boolean;
  maxPayload: number;
  handshakeTimeout: number;
  secureContext: SecureContext;
  checkServerIdentity: () => undefined;
}

export type WsConstructor = new (url: string, options: WsClientOptions) => WsClient;

export interface WorkspaceDeps {
  protocol: typeof Protocol;
  WebSocket: WsConstructor & { readonly OPEN: number };
}

/** Load @gild/protocol and ws the way @gild/agent resolves them. */
export async function loadWorkspaceDeps(): Promise<WorkspaceDeps> {
  const agentPackage = join(findRepoRoot(), "packages", "agent", "package.json");
  const require = createRequire(agentPackage);
  const load = async (name: string): Promise<unknown> => import(pathToFileURL(require.resolve(name)).href);
  const protocol = (await load("@gild/protocol")) as typeof Protocol;
  // ws is CommonJS: its module.exports (the WebSocket class) is the default export.
  const ws = (await load("ws")) as { default: WorkspaceDeps["WebSocket"] };
  return { protocol, WebSocket: ws.default };
}
