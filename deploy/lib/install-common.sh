# shellcheck shell=bash
# Shared by deploy/install-controller and deploy/install-agent; sourced, never run on its own.
#
# The flow of both installers: parse arguments -> checks that change nothing (every problem is listed
# at once) -> look at what is already there -> print the plan -> confirm (or --yes; --dry-run stops
# here) -> apply, skipping every step that is already done, so that a second run changes nothing.
# docs/deployment.md describes the result; keep the two in step.

# --- What gets installed where ----------------------------------------------------------------------

# The Node.js runtime (docs/deployment.md, "The Node.js runtime"): the nodejs package from NodeSource's
# apt repository for one major version, so that its security updates arrive with `apt upgrade`. The
# repository's signing key is checked against this fingerprint before apt is told to trust it.
# Node.js 22 (LTS until 2027-04-30): Node.js >= 24.19 aborts the process when it collects a statement
# of better-sqlite3 < 13 (WiseLibs/better-sqlite3#1515), the controller's SQLite driver; 24 is refused
# until gild moves to better-sqlite3 13.
readonly DEFAULT_NODE_MAJOR=22
readonly NODESOURCE_KEY_URL="https://deb.nodesource.com/gpgkey/nodesource-repo.gpg.key"
readonly NODESOURCE_KEY_FINGERPRINT="6F71F525282841EEDAF851B42F59B5F99B1BE0B4"
readonly NODESOURCE_KEYRING=/etc/apt/keyrings/gild-nodesource.asc
readonly NODESOURCE_SOURCES=/etc/apt/sources.list.d/gild-nodesource.sources
readonly NODESOURCE_PIN=/etc/apt/preferences.d/gild-nodesource
# Where NodeSource's nodejs package puts node and npm. With --node system, NODE_BIN and NPM_BIN are the
# ones on PATH instead (resolve_node).
readonly NODESOURCE_NODE_BIN=/usr/bin/node
NODE_BIN="$NODESOURCE_NODE_BIN"
NPM_BIN=/usr/bin/npm
# The directory with include/node (headers the native SQLite module is compiled against).
NODE_HEADERS_DIR=/usr

readonly GILD_PREFIX=/opt/gild
readonly GILD_BIN=/usr/local/bin/gild
# shellcheck disable=SC2034 # used by the installers that source this file
readonly GILD_ETC=/etc/gild
readonly GILD_VAR=/var/lib/gild
readonly GILD_CACHE=/var/cache/gild
readonly GILD_UNIT_DIR=/usr/local/lib/systemd/system
# shellcheck disable=SC2034 # used by the installers that source this file
readonly GILD_DROPIN_PARENT=/etc/systemd/system
# shellcheck disable=SC2034 # used by the installers that source this file
readonly DEFAULT_POOL=/var/lib/gild/pool
# Releases kept besides the current one, for a quick rollback (docs/deployment.md, "Upgrades").
readonly KEEP_RELEASES=3

# --- Output ---------------------------------------------------------------------------------------

say() { printf '%s\n' "$*"; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}
usage_error() {
  printf 'error: %s\n' "$1" >&2
  printf '%s\n' "$USAGE" >&2
  exit 2
}
step() { printf '\n== %s\n' "$*"; }

# --- Checks that change nothing -------------------------------------------------------------------

PROBLEMS=()
NOTES=()
CHECKS_OK=()
problem() { PROBLEMS+=("$1"); }
note() { NOTES+=("$1"); }
ok() { CHECKS_OK+=("$1"); }

check_root() {
  if [ "$(id -u)" = 0 ]; then
    ok "running as root"
  else
    problem "this installer must run as root (it installs packages, writes /etc, /opt and systemd units).
    Fix: run it again as root, with the same arguments (become root with su -; a minimal Debian has no sudo)."
  fi
}

# Debian 12+ or Ubuntu 22.04+; sets OS_PRETTY.
check_os() {
  local id="" version="" pretty=""
  if [ -r /etc/os-release ]; then
    id="$(. /etc/os-release && printf '%s' "${ID:-}")"
    version="$(. /etc/os-release && printf '%s' "${VERSION_ID:-}")"
    pretty="$(. /etc/os-release && printf '%s' "${PRETTY_NAME:-}")"
  fi
  OS_PRETTY="${pretty:-unknown}"
  local major="${version%%.*}" minor=0
  case "$version" in *.*) minor="${version#*.}" minor="${minor%%.*}" ;; esac
  [[ "$major" =~ ^[0-9]+$ ]] || major=0
  [[ "$minor" =~ ^[0-9]+$ ]] || minor=0
  local supported=false
  case "$id" in
  debian) [ "$major" -ge 12 ] && supported=true ;;
  ubuntu) { [ "$major" -gt 22 ] || { [ "$major" -eq 22 ] && [ "$minor" -ge 4 ]; }; } && supported=true ;;
  esac
  if $supported; then
    ok "$OS_PRETTY"
  else
    problem "unsupported operating system: ${OS_PRETTY} (ID=${id:-?} VERSION_ID=${version:-?}).
    The installers support Debian 12 or later and Ubuntu 22.04 or later (apt, systemd >= 249).
    Fix: use one of these, or install by hand as docs/deployment.md, \"Manual installation\", describes."
  fi
}

# NodeSource builds for amd64 and arm64.
check_arch() {
  local arch
  arch="$(dpkg --print-architecture 2>/dev/null || uname -m)"
  case "$arch" in
  amd64 | arm64) ok "architecture $arch" ;;
  *)
    problem "unsupported architecture $arch: NodeSource's Node.js packages exist for amd64 and arm64.
    Fix: use an amd64 or arm64 server."
    ;;
  esac
}

# systemd as PID 1 is needed to start the unit; without it (an image being prepared in a chroot or a
# container), the unit is installed and enabled and starts at the next boot. Sets SYSTEMD_RUNNING.
check_systemd() {
  if [ -d /run/systemd/system ]; then
    SYSTEMD_RUNNING=true
    ok "systemd is running"
  else
    SYSTEMD_RUNNING=false
    note "systemd is not running here (PID 1 is $(cat /proc/1/comm 2>/dev/null || echo unknown)): the unit will be installed and enabled but not started; it starts at the next boot"
  fi
}

check_source() {
  local missing=()
  local f
  for f in package.json pnpm-lock.yaml pnpm-workspace.yaml packages/cli/package.json packages/dashboard/package.json \
    "deploy/systemd/$UNIT_NAME" "deploy/config/$ROLE.example.json"; do
    [ -f "$SRC_DIR/$f" ] || missing+=("$f")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    problem "$SRC_DIR is not a complete gild checkout (missing: ${missing[*]}).
    Fix: run the installer from the deploy/ directory of a full gild checkout."
  else
    ok "gild checkout $SRC_DIR"
  fi
}

# A path the installer will write into JSON and systemd files: absolute, no spaces or quotes.
valid_path() { [[ "$1" =~ ^/[A-Za-z0-9._/@+-]*$ ]] && [[ "$1" != *..* ]]; }

# The nearest existing directory at or above $1.
existing_ancestor() {
  local p="$1"
  while [ ! -e "$p" ]; do p="$(dirname "$p")"; done
  printf '%s' "$p"
}

# The pool must be on btrfs: images, app roots and their snapshots are btrfs subvolumes.
check_pool() {
  local pool="$1"
  if ! valid_path "$pool"; then
    problem "pool path \"$pool\" must be an absolute path of letters, digits and . _ - / @ +.
    Fix: pass --pool /some/dir/on/btrfs"
    return
  fi
  if [ -e "$pool" ] && [ ! -d "$pool" ]; then
    problem "pool path $pool exists and is not a directory.
    Fix: pass --pool with a directory on a btrfs filesystem."
    return
  fi
  local probe fstype
  probe="$(existing_ancestor "$pool")"
  fstype="$(stat -f -c %T "$probe" 2>/dev/null || echo unknown)"
  if [ "$fstype" = btrfs ]; then
    if [ "$probe" = "$pool" ]; then ok "pool $pool is on btrfs"; else ok "pool $pool will be made on btrfs ($probe)"; fi
  else
    problem "the pool path $pool is not on btrfs ($probe is on $fstype). gild keeps images and app roots as
    btrfs subvolumes and ships them with btrfs send/receive, so the pool must be on a btrfs filesystem.
    Fix: make one on an empty disk or partition (this ERASES it; /dev/sdX is an example) and mount it there:
        mkfs.btrfs -L gild-pool /dev/sdX
        mkdir -p $pool
        echo 'LABEL=gild-pool $pool btrfs defaults,noatime 0 0' >> /etc/fstab
        mount $pool
    or pass --pool with a directory on a btrfs filesystem that is already mounted."
  fi
}

# A flat string value of our own (pretty-printed, one key a line) JSON config files.
json_string() {
  local file="$1" key="$2"
  sed -n "s/^[[:space:]]*\"$key\"[[:space:]]*:[[:space:]]*\"\\([^\"]*\\)\".*/\\1/p" "$file" | head -n 1
}

# The controller and an agent on one machine must not share a pool: both sweep its .staging at start,
# and the agent would take the controller's own image versions for received ones.
check_pool_not_shared() {
  local pool="$1" other_config="$2" other_default="$3"
  [ -f "$other_config" ] || return 0
  local other
  other="$(json_string "$other_config" pool)"
  other="${other:-$other_default}"
  if [ "$other" = "$pool" ]; then
    problem "$other_config already uses the pool $pool; the controller and an agent on one machine need
    separate pools (both clean the pool's .staging at start, and the agent would mistake the controller's
    image versions for received ones).
    Fix: pass --pool with another directory on btrfs, e.g. --pool ${pool%/}-$ROLE"
  fi
}

report_checks() {
  local line
  say "Checks:"
  for line in "${CHECKS_OK[@]}"; do say "  ok       $line"; done
  for line in "${NOTES[@]}"; do say "  note     $line"; done
  for line in "${PROBLEMS[@]}"; do say "  REFUSED  $line"; done
  if [ "${#PROBLEMS[@]}" -gt 0 ]; then
    printf '\nerror: %d problem(s) above; nothing was changed.\n' "${#PROBLEMS[@]}" >&2
    exit 1
  fi
}

# --- What is there already ------------------------------------------------------------------------

# The source files of the checkout that make a release (relative, NUL-separated, sorted): no build
# output, no dependencies, no VCS data.
source_files() {
  (
    cd "$SRC_DIR" &&
      find . \( -name node_modules -o -name dist -o -name .git -o -name .fleet -o -name coverage \) -prune \
        -o -type f ! -name '*.tsbuildinfo' -print0 | LC_ALL=C sort -z
  )
}

# RELEASE_ID: the CLI version, a hash of the source files, and the Node.js major version the native
# module (better-sqlite3) is built for. The same checkout always gives the same id: a second run finds
# the release built and does not build it again.
compute_release() {
  local version hash
  version="$(sed -n 's/^[[:space:]]*"version"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' "$SRC_DIR/packages/cli/package.json" | head -n 1)"
  hash="$(source_files | (cd "$SRC_DIR" && xargs -0 -r sha256sum) | sha256sum | cut -c1-12)"
  RELEASE_ID="${version:-0}-${hash}-node${NODE_MAJOR}"
  RELEASE_DIR="$GILD_PREFIX/releases/$RELEASE_ID"
  PNPM_VERSION="$(sed -n 's/^[[:space:]]*"packageManager"[[:space:]]*:[[:space:]]*"pnpm@\([^"+]*\).*/\1/p' "$SRC_DIR/package.json" | head -n 1)"
  [ -n "$PNPM_VERSION" ] || die "cannot read the pnpm version (packageManager) from $SRC_DIR/package.json"
  PNPM_DIR="$GILD_PREFIX/tools/pnpm-$PNPM_VERSION"
}

# The major version of a `node --version` answer (v22.3.1 -> 22), or nothing.
node_major_of() { [[ "$1" =~ ^v([0-9]+)\.[0-9]+\.[0-9]+ ]] && printf '%s' "${BASH_REMATCH[1]}"; }

# True when the installed wrapper was written for --node system: a re-run keeps that choice.
wrapper_uses_system_node() { [ -f "$GILD_BIN" ] && grep -q '^# node: system' "$GILD_BIN"; }

# NODE_SOURCE (nodesource or system) from --node, else what the last install chose; then the runtime
# it names (resolve_nodesource or resolve_system_node). Sets NODE_SOURCE_WHY for the plan.
resolve_node() {
  NODE_SOURCE="${NODE_SOURCE_FLAG:-}"
  NODE_SOURCE_WHY=""
  if [ -z "$NODE_SOURCE" ]; then
    if wrapper_uses_system_node && [ -z "$NODE_MAJOR_FLAG" ]; then
      NODE_SOURCE=system
      NODE_SOURCE_WHY="as installed before; --node nodesource changes it"
    else
      NODE_SOURCE=nodesource
    fi
  fi
  case "$NODE_SOURCE" in
  nodesource) resolve_nodesource ;;
  system) resolve_system_node ;;
  *)
    problem "--node \"$NODE_SOURCE\": one of nodesource (the default: NodeSource's apt repository) or system
    (the Node.js already on PATH)."
    NODE_SOURCE=nodesource
    NODE_MAJOR="$DEFAULT_NODE_MAJOR"
    ;;
  esac
}

# NODE_MAJOR from --node-major; without it, the major of the Node.js installed at /usr/bin/node when it
# is one the installers support (a re-run never moves to another major by itself), else 22. gild needs
# Node.js >= 20.11 (NodeSource's 20.x is 20.19). Sets NODE_MAJOR_KEPT.
resolve_nodesource() {
  NODE_MAJOR_KEPT=false
  local installed_major
  installed_major="$(node_major_of "$("$NODESOURCE_NODE_BIN" --version 2>/dev/null || true)" || true)"
  if [ -n "$NODE_MAJOR_FLAG" ]; then
    NODE_MAJOR="$NODE_MAJOR_FLAG"
  elif [ "$installed_major" = 20 ] || [ "$installed_major" = 22 ]; then
    NODE_MAJOR="$installed_major"
    NODE_MAJOR_KEPT=true
  else
    NODE_MAJOR="$DEFAULT_NODE_MAJOR"
  fi
  case "$NODE_MAJOR" in
  22) ;;
  20)
    if $NODE_MAJOR_KEPT; then
      note "keeping the installed Node.js 20 (a re-run keeps the major); it reached its end of life on 2026-04-30: move to 22 with --node-major 22 (docs/deployment.md, \"Upgrades\")"
    else
      note "Node.js 20 reached its end of life on 2026-04-30: prefer the default, --node-major 22"
    fi
    ;;
  *)
    problem "--node-major \"$NODE_MAJOR\": the installers support Node.js 22 (the default) and 20.
    gild needs >= 20.11, and Node.js >= 24.19 aborts on the SQLite driver gild uses (better-sqlite3 12)."
    NODE_MAJOR="$DEFAULT_NODE_MAJOR"
    ;;
  esac
}

# --node system: the node on PATH, as it is (no NodeSource repository: for machines that cannot reach
# it, or that manage Node.js themselves). It must be 20.11 or newer and older than 24 (see above).
# Sets NODE_BIN, NPM_BIN, NODE_HEADERS_DIR, NODE_MAJOR and NODE_INSTALLED.
resolve_system_node() {
  NODE_MAJOR_KEPT=false
  NODE_MAJOR="$DEFAULT_NODE_MAJOR"
  if [ -n "$NODE_MAJOR_FLAG" ]; then
    problem "--node-major chooses NodeSource's package; with --node system the Node.js on PATH is used as it is.
    Fix: drop one of the two flags."
  fi
  local found version major minor
  found="$(command -v node 2>/dev/null || true)"
  if [ -z "$found" ]; then
    problem "--node system: there is no node on PATH ($PATH).
    Fix: install Node.js 20.11 or newer (22 preferred) so that root finds node on its PATH, or drop
    --node system to install NodeSource's package."
    return
  fi
  if ! valid_path "$found"; then
    problem "--node system: $found is not a plain absolute path (the wrapper $GILD_BIN names it)."
    return
  fi
  version="$("$found" --version 2>/dev/null || true)"
  major="$(node_major_of "$version" || true)"
  minor="$(sed -n 's/^v[0-9]*\.\([0-9]*\)\..*/\1/p' <<<"$version")"
  if [ -z "$major" ] || [ "$major" -lt 20 ] || { [ "$major" -eq 20 ] && [ "${minor:-0}" -lt 11 ]; }; then
    problem "--node system: $found is Node.js ${version:-of unknown version}; gild needs 20.11 or newer.
    Fix: install a newer Node.js (22 preferred) first, or drop --node system to install NodeSource's."
    return
  fi
  if [ "$major" -ge 24 ]; then
    problem "--node system: $found is Node.js $version; Node.js >= 24.19 aborts on the SQLite driver gild uses
    (better-sqlite3 12). Fix: put Node.js 22 (or 20.11 or newer) first on PATH."
    return
  fi
  NODE_BIN="$found"
  NODE_INSTALLED="$version"
  NODE_MAJOR="$major"
  # npm comes beside node (a tarball, NodeSource), or from a package of its own (Debian's npm).
  if [ -x "$(dirname "$found")/npm" ]; then
    NPM_BIN="$(dirname "$found")/npm"
  else
    NPM_BIN="$(command -v npm 2>/dev/null || true)"
  fi
  local prefix
  prefix="$(dirname "$(dirname "$(readlink -f "$found")")")"
  if [ -f "$prefix/include/node/node.h" ]; then
    NODE_HEADERS_DIR="$prefix"
  elif [ -f /usr/include/node/node.h ]; then
    NODE_HEADERS_DIR=/usr
  else
    NODE_HEADERS_DIR="$prefix"
    note "--node system: no Node.js headers in $prefix/include/node: the build of the native SQLite module
    will try to download them, which fails without Internet access (Debian: apt-get install libnode-dev)"
  fi
  ok "Node.js $version ($found, --node system)"
}

# What is there: NODE_STATE system (--node system) | keep (node of that major installed) | install |
# replace (another version); NODESOURCE_FILE, a sources file that already points at NodeSource's
# repository for that major.
survey_node() {
  NODESOURCE_FILE=""
  if [ "$NODE_SOURCE" = system ]; then
    NODE_STATE=system
    return
  fi
  NODE_INSTALLED="$("$NODE_BIN" --version 2>/dev/null || true)"
  if [[ "$NODE_INSTALLED" == "v$NODE_MAJOR."* ]]; then
    NODE_STATE=keep
  elif [ -n "$NODE_INSTALLED" ]; then
    NODE_STATE=replace
  else
    NODE_STATE=install
  fi
  NODESOURCE_FILE="$(grep -ls "deb.nodesource.com/node_$NODE_MAJOR.x" /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1 || true)"
}

# npm, given --prefix, takes <prefix>/etc/npmrc for its global config, so the machine's (a registry
# mirror, a cafile for a TLS-inspecting proxy) would be ignored. NPM_CONFIG_ARGS points it back at the
# global config of the machine's npm (or /etc/npmrc when that one does not exist) and keeps the user's
# (~/.npmrc). Empty while npm is not installed yet (NodeSource's nodejs brings it).
npm_config_args() {
  NPM_CONFIG_ARGS=()
  NPM_GLOBALCONFIG=""
  NPM_USERCONFIG=""
  [ -n "$NPM_BIN" ] && [ -x "$NPM_BIN" ] || return 0
  NPM_GLOBALCONFIG="$(PATH="$(dirname "$NODE_BIN"):$PATH" "$NPM_BIN" config get globalconfig 2>/dev/null || true)"
  if [ ! -f "$NPM_GLOBALCONFIG" ] && [ -f /etc/npmrc ]; then NPM_GLOBALCONFIG=/etc/npmrc; fi
  NPM_USERCONFIG="$(PATH="$(dirname "$NODE_BIN"):$PATH" "$NPM_BIN" config get userconfig 2>/dev/null || true)"
  [ -z "$NPM_GLOBALCONFIG" ] || NPM_CONFIG_ARGS+=(--globalconfig "$NPM_GLOBALCONFIG")
  [ -z "$NPM_USERCONFIG" ] || NPM_CONFIG_ARGS+=(--userconfig "$NPM_USERCONFIG")
}

# Where the pnpm step downloads from, as the plan shows it: read by npm with the step's own arguments.
pnpm_source() {
  npm_config_args
  if [ "${#NPM_CONFIG_ARGS[@]}" -eq 0 ]; then
    printf '%s' "the registry this machine's npm config names (its global npmrc, root's ~/.npmrc)"
    return
  fi
  local registry
  registry="$(PATH="$(dirname "$NODE_BIN"):$PATH" "$NPM_BIN" config get registry --prefix "$PNPM_DIR" "${NPM_CONFIG_ARGS[@]}" 2>/dev/null || echo unknown)"
  printf '%s' "$registry (npm config: global ${NPM_GLOBALCONFIG:-none}, user ${NPM_USERCONFIG:-none})"
}

nodesource_sources_content() {
  cat <<EOF
# Written by gild's deploy/install-$ROLE: Node.js $NODE_MAJOR.x from NodeSource (docs/deployment.md).
Types: deb
URIs: https://deb.nodesource.com/node_$NODE_MAJOR.x
Suites: nodistro
Components: main
Signed-By: $NODESOURCE_KEYRING
EOF
}

# apt takes only the nodejs package from NodeSource: its key signs nothing else that gets installed.
nodesource_pin_content() {
  cat <<EOF
# Written by gild's deploy/install-$ROLE: from NodeSource's repository, take nodejs and nothing else.
Package: *
Pin: origin deb.nodesource.com
Pin-Priority: -1

Package: nodejs
Pin: origin deb.nodesource.com
Pin-Priority: 600
EOF
}

MISSING_PACKAGES=()
survey_packages() {
  local pkg
  MISSING_PACKAGES=()
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || MISSING_PACKAGES+=("$pkg")
  done
}

pnpm_present() { [ -x "$PNPM_DIR/bin/pnpm" ]; }
release_present() { [ -f "$RELEASE_DIR/.gild-release" ]; }
current_release() { readlink "$GILD_PREFIX/current" 2>/dev/null || true; }

wrapper_content() {
  if [ "$NODE_SOURCE" = system ]; then
    cat <<EOF
#!/bin/sh
# The gild CLI, installed by gild's deploy/install-controller or deploy/install-agent: it runs the
# current release (/opt/gild/current) with the Node.js that was on PATH (--node system).
# node: system
exec $NODE_BIN /opt/gild/current/packages/cli/dist/bin.js "\$@"
EOF
    return
  fi
  cat <<'EOF'
#!/bin/sh
# The gild CLI, installed by gild's deploy/install-controller or deploy/install-agent: it runs the
# current release (/opt/gild/current) with the system's Node.js (NodeSource's nodejs package).
exec /usr/bin/node /opt/gild/current/packages/cli/dist/bin.js "$@"
EOF
}

# The drop-in that opens the role's paths outside /var/lib/gild (a pool, a data dir) to the sandboxed
# unit, and orders the unit after their mounts. Empty when every path is under /var/lib/gild (the unit
# covers those). The role sets UNIT_PATHS.
dropin_content() {
  local outside=() p
  for p in "${UNIT_PATHS[@]}"; do
    case "$p/" in "$GILD_VAR"/*) ;; *) outside+=("$p") ;; esac
  done
  [ "${#outside[@]}" -gt 0 ] || return 0
  cat <<EOF
# Written by gild's deploy/install-$ROLE: these paths of its config are outside /var/lib/gild.
[Unit]
RequiresMountsFor=${outside[*]}

[Service]
ReadWritePaths=${outside[*]}
EOF
}

# "new", "update" or "keep" for a file that should have the content on stdin.
file_state() {
  local path="$1" want
  want="$(cat)"
  if [ ! -e "$path" ]; then
    echo new
  elif [ "$(cat "$path")" = "$want" ]; then
    echo keep
  else
    echo update
  fi
}

# --- Plan and confirmation ------------------------------------------------------------------------

PLAN=()
plan() { PLAN+=("$(printf '  %-13s %s' "$1" "$2")"); }

# The common part of the plan: packages, runtime, pnpm, release, wrapper, unit and drop-in.
plan_common() {
  if [ "${#MISSING_PACKAGES[@]}" -gt 0 ]; then
    plan "apt" "apt-get update; apt-get install ${MISSING_PACKAGES[*]}"
  else
    plan "apt" "keep: ${APT_PACKAGES[*]} are installed"
  fi
  case "$NODE_STATE" in
  system)
    plan "Node.js" "keep: $NODE_INSTALLED ($NODE_BIN, --node system${NODE_SOURCE_WHY:+, $NODE_SOURCE_WHY}); no NodeSource repository: updating this Node.js is up to you"
    ;;
  keep)
    if $NODE_MAJOR_KEPT; then
      plan "Node.js" "keep: $NODE_INSTALLED ($NODE_BIN): the installed major is kept; --node-major N changes it"
    else
      plan "Node.js" "keep: $NODE_INSTALLED ($NODE_BIN)"
    fi
    ;;
  *)
    if [ -n "$NODESOURCE_FILE" ]; then
      plan "apt source" "keep: $NODESOURCE_FILE (NodeSource node_$NODE_MAJOR.x)"
    else
      plan "apt key" "$NODESOURCE_KEYRING: NodeSource's key from $NODESOURCE_KEY_URL, only if its fingerprint is $NODESOURCE_KEY_FINGERPRINT"
      plan "apt source" "$(nodesource_sources_content | file_state "$NODESOURCE_SOURCES"): $NODESOURCE_SOURCES (https://deb.nodesource.com/node_$NODE_MAJOR.x nodistro main)"
    fi
    plan "apt pin" "$(nodesource_pin_content | file_state "$NODESOURCE_PIN"): $NODESOURCE_PIN (only nodejs from NodeSource)"
    if [ "$NODE_STATE" = replace ]; then
      plan "Node.js" "apt-get install nodejs: replaces node $NODE_INSTALLED by Node.js $NODE_MAJOR.x (NodeSource)"
    else
      plan "Node.js" "apt-get install nodejs: Node.js $NODE_MAJOR.x (NodeSource)"
    fi
    ;;
  esac
  if pnpm_present; then
    plan "pnpm" "keep: $PNPM_DIR"
  else
    plan "pnpm" "npm install pnpm@$PNPM_VERSION into $PNPM_DIR from $(pnpm_source)"
  fi
  if release_present; then
    plan "gild" "keep: release $RELEASE_ID is built in $RELEASE_DIR"
  else
    plan "gild" "build release $RELEASE_ID from $SRC_DIR in $RELEASE_DIR (pnpm install --frozen-lockfile, build, production dependencies only)"
  fi
  if [ "$(current_release)" = "$RELEASE_DIR" ]; then
    plan "symlink" "keep: $GILD_PREFIX/current -> $RELEASE_DIR"
  else
    local was
    was="$(current_release)"
    plan "symlink" "$GILD_PREFIX/current -> $RELEASE_DIR (was: ${was:-none})"
    if [ -n "$was" ]; then
      plan "cleanup" "remove releases older than the newest $KEEP_RELEASES in $GILD_PREFIX/releases"
    fi
  fi
  plan "file" "$(wrapper_content | file_state "$GILD_BIN"): $GILD_BIN (0755, runs $GILD_PREFIX/current)"
  plan "unit" "$(file_state "$GILD_UNIT_DIR/$UNIT_NAME" <"$SRC_DIR/deploy/systemd/$UNIT_NAME"): $GILD_UNIT_DIR/$UNIT_NAME"
  local dropin
  dropin="$(dropin_content)"
  if [ -n "$dropin" ]; then
    plan "unit drop-in" "$(printf '%s\n' "$dropin" | file_state "$DROPIN_FILE"): $DROPIN_FILE (opens $(sed -n 's/^ReadWritePaths=//p' <<<"$dropin") to the unit)"
  elif [ -e "$DROPIN_FILE" ]; then
    plan "unit drop-in" "remove $DROPIN_FILE (every path is under $GILD_VAR)"
  fi
}

# plan_files PRIVATE_DIR WHAT EXAMPLE [ABOUT]: the directories (PRIVATE_DIR 0700, holding WHAT), and the
# config file, new from deploy/config/EXAMPLE (shown as render_config makes it) or kept as it is.
# POOL, CONFIG_FILE and render_config come from the installer that sources this file.
# shellcheck disable=SC2153
plan_files() {
  local private_dir="$1" what="$2" example="$3" about="${4:-}"
  local dir line
  for dir in "$GILD_ETC" "$GILD_VAR" "$private_dir" "$POOL"; do
    if [ -d "$dir" ]; then plan "directory" "keep: $dir"; else plan "directory" "create $dir"; fi
  done
  plan "mode" "$private_dir 0700 ($what), $GILD_ETC 0755"
  if [ -f "$CONFIG_FILE" ]; then
    plan "config" "keep: $CONFIG_FILE (never overwritten)"
  else
    plan "config" "new: $CONFIG_FILE (0644, from deploy/config/$example$about):"
    while IFS= read -r line; do PLAN+=("                  $line"); done < <(render_config)
  fi
}

plan_service() {
  if $SYSTEMD_RUNNING; then
    plan "service" "systemctl daemon-reload; enable $UNIT_NAME; start it (restart it when the release or the unit changed)"
  else
    plan "service" "systemctl enable $UNIT_NAME (systemd is not running: it starts at the next boot)"
  fi
}

# apply_files PRIVATE_DIR: what plan_files showed, then the unit.
# shellcheck disable=SC2153
apply_files() {
  step "files and directories"
  mkdir -p "$GILD_ETC" "$GILD_VAR" "$POOL"
  chmod 0755 "$GILD_ETC" "$GILD_VAR"
  install -d -m 0700 "$1"
  render_config | write_if_missing "$CONFIG_FILE" 0644
  apply_unit
}

# An https://HOST[:PORT] URL without a path (a name, IPv4, or [IPv6]).
valid_https_url() { [[ "$1" =~ ^https://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?$ ]]; }

print_plan() {
  local line
  say ""
  say "This will change, on $(hostname):"
  for line in "${PLAN[@]}"; do say "$line"; done
  say ""
  say "Nothing else is changed. Existing config files are never overwritten."
}

confirm() {
  if $DRY_RUN; then
    say ""
    say "dry run: nothing was changed."
    exit 0
  fi
  $ASSUME_YES && return 0
  if [ ! -t 0 ]; then
    die "no terminal to ask for confirmation on: read the plan above (or run with --dry-run), then re-run with --yes"
  fi
  local answer=""
  read -r -p "Proceed? [y/N] " answer
  case "$answer" in
  y | Y | yes | YES) ;;
  *) die "cancelled; nothing was changed" ;;
  esac
}

# --- Apply ----------------------------------------------------------------------------------------

TMP_DIRS=()
cleanup_tmp() {
  local d
  for d in "${TMP_DIRS[@]}"; do rm -rf -- "$d"; done
}
trap cleanup_tmp EXIT

# One installer at a time on a machine.
take_lock() {
  mkdir -p /run/lock
  exec 9>/run/lock/gild-install.lock
  flock -n 9 || die "another gild installer is running on this machine (lock /run/lock/gild-install.lock)"
}

apply_packages() {
  [ "${#MISSING_PACKAGES[@]}" -gt 0 ] || return 0
  step "apt: installing ${MISSING_PACKAGES[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${MISSING_PACKAGES[@]}"
}

apply_node() {
  case "$NODE_STATE" in keep | system) return 0 ;; esac
  step "Node.js $NODE_MAJOR.x from NodeSource"
  if [ -z "$NODESOURCE_FILE" ]; then
    local tmp key fingerprints
    tmp="$(mktemp -d)"
    TMP_DIRS+=("$tmp")
    key="$tmp/nodesource.asc"
    curl --fail --silent --show-error --location --proto '=https' --tlsv1.2 --retry 3 \
      --output "$key" "$NODESOURCE_KEY_URL" ||
      die "cannot download NodeSource's key from $NODESOURCE_KEY_URL. Fix: check this server's HTTPS access to deb.nodesource.com (or an apt proxy)"
    fingerprints="$(GNUPGHOME="$tmp" gpg --batch --show-keys --with-colons "$key" 2>/dev/null |
      awk -F: '$1 == "pub" { primary = 1; next } $1 == "fpr" && primary { print $10; primary = 0 }')"
    if [ "$fingerprints" != "$NODESOURCE_KEY_FINGERPRINT" ]; then
      die "the key at $NODESOURCE_KEY_URL is not NodeSource's (fingerprints: ${fingerprints:-none}, expected $NODESOURCE_KEY_FINGERPRINT): refusing to trust it"
    fi
    install -d -m 0755 "$(dirname "$NODESOURCE_KEYRING")"
    install -m 0644 "$key" "$NODESOURCE_KEYRING"
    nodesource_sources_content >"$NODESOURCE_SOURCES"
    say "wrote $NODESOURCE_KEYRING and $NODESOURCE_SOURCES"
  fi
  install -d -m 0755 "$(dirname "$NODESOURCE_PIN")"
  nodesource_pin_content >"$NODESOURCE_PIN"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs
  local version
  version="$("$NODE_BIN" --version 2>/dev/null || true)"
  [[ "$version" == "v$NODE_MAJOR."* ]] ||
    die "after apt-get install nodejs, $NODE_BIN is ${version:-missing}, not Node.js $NODE_MAJOR.x: check apt-cache policy nodejs"
  say "Node.js $version"
}

apply_pnpm() {
  pnpm_present && return 0
  step "pnpm $PNPM_VERSION: $PNPM_DIR"
  mkdir -p "$GILD_PREFIX/tools" "$GILD_CACHE"
  [ -n "$NPM_BIN" ] && [ -x "$NPM_BIN" ] ||
    die "there is no npm to install pnpm with (${NPM_BIN:-none found}). Fix: install npm (Debian: apt-get install npm) and run this installer again"
  npm_config_args
  PATH="$(dirname "$NODE_BIN"):$PATH" "$NPM_BIN" install --global --no-fund --no-audit "${NPM_CONFIG_ARGS[@]}" \
    --prefix "$PNPM_DIR" --cache "$GILD_CACHE/npm" "pnpm@$PNPM_VERSION"
}

# Build in a hidden directory and rename it into place when complete: an interrupted build never
# looks like a release.
apply_release() {
  release_present && return 0
  step "gild: building release $RELEASE_ID"
  local partial="$GILD_PREFIX/releases/.$RELEASE_ID.partial"
  mkdir -p "$GILD_PREFIX/releases" "$GILD_CACHE"
  rm -rf -- "$partial"
  mkdir -p "$partial"
  TMP_DIRS+=("$partial")
  source_files | (cd "$SRC_DIR" && tar --null -T - -cf -) | tar -C "$partial" -xf - --no-same-owner
  (
    cd "$partial" || exit 1
    # pnpm runs with the node the release is for (it starts with #!/usr/bin/env node).
    PATH="$(dirname "$NODE_BIN"):$PNPM_DIR/bin:$PATH"
    export PATH
    # better-sqlite3 is compiled against the runtime's own headers (/usr/include/node for NodeSource's),
    # with no download of headers.
    export npm_config_nodedir="$NODE_HEADERS_DIR"
    # No prompts and no progress bars from pnpm.
    export CI=true
    local store="$GILD_CACHE/pnpm-store"
    pnpm install --frozen-lockfile --store-dir "$store"
    pnpm run build
    # Keep only what runs: reinstall with production dependencies (the build tools go).
    find . -name node_modules -type d -prune -exec rm -rf {} +
    pnpm install --frozen-lockfile --prod --store-dir "$store"
    "$NODE_BIN" packages/cli/dist/bin.js --version >/dev/null
    # The controller serves the dashboard from here (pnpm build made it; --prod keeps build outputs).
    [ -f packages/dashboard/dist/index.html ] || {
      echo "the build made no dashboard (packages/dashboard/dist/index.html)" >&2
      exit 1
    }
  )
  printf '%s\n' "$RELEASE_ID" >"$partial/.gild-release"
  rm -rf -- "$RELEASE_DIR"
  mv -- "$partial" "$RELEASE_DIR"
  say "built $RELEASE_DIR"
}

# Point /opt/gild/current at the release (atomically: a new symlink renamed over the old one) and
# install the wrapper. Sets RELEASE_CHANGED.
apply_current() {
  RELEASE_CHANGED=false
  if [ "$(current_release)" != "$RELEASE_DIR" ]; then
    ln -sfn "$RELEASE_DIR" "$GILD_PREFIX/.current.new"
    mv -T "$GILD_PREFIX/.current.new" "$GILD_PREFIX/current"
    RELEASE_CHANGED=true
    say "$GILD_PREFIX/current -> $RELEASE_DIR"
    prune_releases
  fi
  if [ "$(wrapper_content | file_state "$GILD_BIN")" != keep ]; then
    mkdir -p "$(dirname "$GILD_BIN")"
    wrapper_content >"$GILD_BIN.new"
    chmod 0755 "$GILD_BIN.new"
    mv -f "$GILD_BIN.new" "$GILD_BIN"
    say "wrote $GILD_BIN"
  fi
}

# Keep the newest $KEEP_RELEASES releases (and always the current one).
prune_releases() {
  local current releases=() r keep=0
  current="$(current_release)"
  while IFS= read -r r; do releases+=("$r"); done < <(
    find "$GILD_PREFIX/releases" -mindepth 1 -maxdepth 1 -type d ! -name '.*' -printf '%T@ %p\n' |
      sort -rn | cut -d' ' -f2-
  )
  for r in "${releases[@]}"; do
    if [ "$r" = "$current" ] || [ "$keep" -lt "$KEEP_RELEASES" ]; then
      keep=$((keep + 1))
      continue
    fi
    say "removing old release $r"
    rm -rf -- "$r"
  done
}

# Write a file only when missing (configs: never overwritten).
write_if_missing() {
  local path="$1" mode="$2"
  if [ -e "$path" ]; then
    say "keeping $path"
    cat >/dev/null
    return 0
  fi
  mkdir -p "$(dirname "$path")"
  cat >"$path.new"
  chmod "$mode" "$path.new"
  mv -n "$path.new" "$path"
  say "wrote $path"
}

# Install the unit and the pool drop-in. Sets UNIT_CHANGED.
apply_unit() {
  UNIT_CHANGED=false
  local target="$GILD_UNIT_DIR/$UNIT_NAME"
  if [ "$(file_state "$target" <"$SRC_DIR/deploy/systemd/$UNIT_NAME")" != keep ]; then
    mkdir -p "$GILD_UNIT_DIR"
    install -m 0644 "$SRC_DIR/deploy/systemd/$UNIT_NAME" "$target"
    UNIT_CHANGED=true
    say "wrote $target"
  fi
  local dropin
  dropin="$(dropin_content)"
  if [ -n "$dropin" ]; then
    if [ "$(printf '%s\n' "$dropin" | file_state "$DROPIN_FILE")" != keep ]; then
      mkdir -p "$(dirname "$DROPIN_FILE")"
      printf '%s\n' "$dropin" >"$DROPIN_FILE"
      UNIT_CHANGED=true
      say "wrote $DROPIN_FILE"
    fi
  elif [ -e "$DROPIN_FILE" ]; then
    rm -f -- "$DROPIN_FILE"
    UNIT_CHANGED=true
    say "removed $DROPIN_FILE"
  fi
}

# Enable the unit; start it, or restart it when the release or the unit changed. Without systemd
# running, only enable it (it starts at the next boot).
apply_service() {
  local unit="$UNIT_NAME"
  if ! $SYSTEMD_RUNNING; then
    systemctl enable "$unit"
    say "enabled $unit; systemd is not running here, so it starts at the next boot"
    return 0
  fi
  systemctl daemon-reload
  systemctl enable "$unit"
  if systemctl is-active --quiet "$unit"; then
    if $RELEASE_CHANGED || $UNIT_CHANGED; then
      say "restarting $unit"
      systemctl restart "$unit"
    else
      say "$unit is running; nothing changed, not restarting it"
    fi
  else
    say "starting $unit"
    systemctl start "$unit" || true
  fi
  # Type=simple reports "active" at once: watch it for a few seconds to catch a start-up failure.
  local i
  for i in 1 2 3 4 5 6 7 8 9 10; do
    sleep 1
    systemctl is-active --quiet "$unit" || break
    [ "$i" -lt 10 ] || return 0
  done
  journalctl -u "$unit" -n 30 --no-pager >&2 || true
  die "$unit did not stay running; the journal's last lines are above (journalctl -u ${unit%.service}). docs/deployment.md, \"Troubleshooting\", lists the usual causes"
}

# Both installers: everything up to the role's own files.
apply_common() {
  take_lock
  apply_packages
  apply_node
  apply_pnpm
  apply_release
  apply_current
}
