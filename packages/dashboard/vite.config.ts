import { defineConfig } from "vite";

// Static files only: the controller serves dist/ at / (index.html) and /assets/ (everything else),
// under a Content-Security-Policy of 'self' with no inline script or style, so nothing may be inlined.
export default defineConfig({
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: {
    outDir: "dist",
    assetsDir: "assets",
    emptyOutDir: true,
    // Never inline assets as data: URLs (the CSP allows 'self' only).
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    target: "es2022",
  },
});
