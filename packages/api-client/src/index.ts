export * from "./client.js";
export * from "./routes.js";
export * from "./transport.js";
export * from "./views.js";
