# Sourced by test/run and deploy/quickstart: install what gild needs on a fresh Debian 12 machine.
# ensure_apt_packages PKG...: apt-get install the ones that are missing (needs root).
# ensure_pnpm: pnpm at the version package.json pins (packageManager).
# ensure_built: pnpm install --frozen-lockfile, then pnpm build.

ensure_apt_packages() {
  local missing=() pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "== installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

ensure_pnpm() {
  local want
  want="$(node -p 'require("./package.json").packageManager.split("@")[1]')"
  if [ "$(pnpm --version 2>/dev/null || true)" != "$want" ]; then
    echo "== installing pnpm $want"
    npm install -g "pnpm@$want"
  fi
}

ensure_built() {
  # better-sqlite3 is built from source against this Node's headers (pnpm ignores this in .npmrc).
  export npm_config_nodedir="${npm_config_nodedir:-/usr}"
  echo "== pnpm install --frozen-lockfile"
  pnpm install --frozen-lockfile
  echo "== pnpm build"
  pnpm build
}

# Everything the quickstart and the tests run: btrfs, nspawn, debootstrap, busybox, netns, xattr tools.
GILD_APT_PACKAGES=(btrfs-progs systemd-container debootstrap busybox-static iproute2 attr util-linux)
# What only the tests need: shellcheck (the installers), faketime (agents with a skewed clock),
# stress-ng (the second e2e pass, with every core busy), prometheus (promtool checks the /metrics text;
# without systemd as PID 1 its daemon is not started), chromium (the dashboard's tests drive it headless;
# no browser is ever downloaded by npm), postgresql-15 (the controller's tests run a second time against
# a temporary cluster of it: scripts/test-postgres.sh; its packaged cluster is not started without
# systemd, and nothing uses it).
GILD_TEST_APT_PACKAGES=(shellcheck faketime stress-ng prometheus chromium postgresql-15)
