#!/usr/bin/env bash
# Runs every Fuzz* target of the given packages for $FUZZTIME each.
set -euo pipefail
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-10s}
for pkg in $("$GO" list "$@"); do
  for target in $("$GO" test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
    echo "== $pkg $target ($FUZZTIME)"
    # Seeds are real vectors of a few KiB; shrinking each new input for
    # the default 60 s would eat the whole budget.
    "$GO" test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" -fuzzminimizetime 5s "$pkg"
  done
done
