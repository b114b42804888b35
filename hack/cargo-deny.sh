#!/usr/bin/env bash
# `make audit`: cargo-deny over the workspace with deny.toml (advisories, licences, bans,
# sources). Installs the pinned cargo-deny into a cache outside the repo once (a second run with
# the binary present installs nothing).
#
# The RustSec advisory database: by default cargo-deny fetches it from the network. On a
# machine that cannot reach it, ADVISORY_DB names a local copy (a directory holding the
# database's `crates/` and `rust/` folders); the check then runs offline against a git
# repository made from that copy in the cache (cargo-deny reads a database only from a git
# repository, and takes its age from the commit: the commit is made when the copy's content
# changes, so a copy left unchanged for longer than `maximum-db-staleness` fails as stale).
#
#   hack/cargo-deny.sh                 install if needed, then `cargo deny check`
#   hack/cargo-deny.sh --install-only  install if needed and print the binary's path
set -euo pipefail
VERSION=${CARGO_DENY_VERSION:-0.20.2}
CACHE=${VPN_PBR_CACHE:-$HOME/.cache/vpn-pbr-operator}
DENY_ROOT=$CACHE/cargo-deny
BIN=$DENY_ROOT/bin/cargo-deny
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DB_URL=https://github.com/rustsec/advisory-db

# One install at a time per cache (concurrent runs wait, then find the binary present).
mkdir -p "$DENY_ROOT"
exec 8>"$DENY_ROOT.lock"
flock 8
if ! { [ -x "$BIN" ] && [ "$("$BIN" --version 2>/dev/null)" = "cargo-deny $VERSION" ]; }; then
  echo "installing cargo-deny $VERSION into $DENY_ROOT" >&2
  # Built in a temporary directory cargo removes afterwards, not in the workspace's target dir.
  env -u CARGO_TARGET_DIR cargo install --locked --force cargo-deny --version "$VERSION" --root "$DENY_ROOT" >&2
fi
flock -u 8
if [ "${1:-}" = --install-only ]; then echo "$BIN"; exit 0; fi

if [ -n "${ADVISORY_DB:-}" ] && [ -d "$ADVISORY_DB" ]; then
  ADVISORY_DB=$(cd "$ADVISORY_DB" && pwd)
fi
cd "$ROOT"
if [ -z "${ADVISORY_DB:-}" ]; then
  # Fetched from the network (into cargo-deny's default place, ~/.cargo/advisory-dbs).
  if ! "$BIN" fetch db; then
    cat >&2 <<EOF
hack/cargo-deny.sh: cannot fetch the RustSec advisory database ($DB_URL).
Where the network cannot reach it, set ADVISORY_DB to a local copy of that repository's
content (a directory with its crates/ and rust/ folders), e.g.
  ADVISORY_DB=/path/to/advisory-db make audit
EOF
    exit 1
  fi
  exec "$BIN" --workspace --locked check
fi

if [ ! -d "$ADVISORY_DB/crates" ]; then
  echo "hack/cargo-deny.sh: ADVISORY_DB=$ADVISORY_DB is not a copy of the RustSec advisory database (no crates/ folder in it)" >&2
  exit 1
fi
# cargo-deny looks for the database of $DB_URL in "<db-path>/advisory-db-<XxHash64 of the
# URL>"; this is that name for the URL above (deny.toml's db-urls).
DBS=$CACHE/cargo-deny/local-advisory-dbs
REPO=$DBS/advisory-db-3157b0e258782691
mkdir -p "$REPO"
exec 8>"$DBS.lock"
flock 8
git() { command git -C "$REPO" -c user.name=hack/cargo-deny.sh -c user.email=noreply.invalid "$@"; }
[ -d "$REPO/.git" ] || git init --quiet
# The copy's content, files removed from it included; a commit only when it changed.
git --work-tree="$ADVISORY_DB" add --all
if ! git diff --cached --quiet; then
  git commit --quiet -m "Local copy of $ADVISORY_DB"
  echo "hack/cargo-deny.sh: took in the advisory database copy $ADVISORY_DB" >&2
fi
git reset --quiet --hard
flock -u 8
echo "hack/cargo-deny.sh: advisories from the local copy $ADVISORY_DB, as of $(git log -1 --format=%cI) (advisories published after it was made are not in it)" >&2

# deny.toml with its database in that repository; --offline keeps cargo-deny off the network;
# the metadata is produced beforehand so that it does not need crates of other platforms that
# were never downloaded.
CONFIG=$(mktemp) META=$(mktemp)
trap 'rm -f "$CONFIG" "$META"' EXIT
sed "/^\[advisories\]\$/a db-path = \"$DBS\"" deny.toml > "$CONFIG"
grep -q '^db-path = ' "$CONFIG" || { echo "hack/cargo-deny.sh: deny.toml has no [advisories] table" >&2; exit 1; }
cargo metadata --format-version 1 --locked > "$META"
"$BIN" --workspace --locked --offline --config "$CONFIG" --metadata-path "$META" check
