#!/usr/bin/env bash
# scripts/is_profile_copy.sh TARGET PROFILE...: exit 0 when TARGET (params.yaml) is an unedited copy of
# one of the params-*.yaml profiles, i.e. equal to a profile as it is now or to any committed version
# of it (a profile edited and committed after it was copied, e.g. a test split registered in
# params-chaos.yaml). The Makefile's `data` target then may replace TARGET; anything else is an edit.
set -euo pipefail
target=$1; shift
for profile in "$@"; do
  [ -f "$profile" ] || continue
  if cmp -s "$profile" "$target"; then exit 0; fi
  for commit in $(git log --format=%H -- "$profile" 2>/dev/null); do
    if git show "$commit:$profile" 2>/dev/null | cmp -s - "$target"; then exit 0; fi
  done
done
exit 1
