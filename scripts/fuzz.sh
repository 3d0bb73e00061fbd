#!/usr/bin/env bash
# Runs every Fuzz* target of the given packages for $FUZZTIME each.
set -euo pipefail
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-10s}
for pkg in $("$GO" list "$@"); do
  for target in $("$GO" test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
    echo "== $pkg $target ($FUZZTIME)"
    "$GO" test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$pkg"
  done
done
