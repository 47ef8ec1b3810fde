#!/bin/sh
# The demo's readiness probe: the kid on stdin must be the one the service uses and one
# the JWKS serves. A file ACCEPT_ONLY makes the "service" refuse every other kid.
set -eu
kid=$(cat)
if [ -e ACCEPT_ONLY ] && [ "$(cat ACCEPT_ONLY)" != "$kid" ]; then
  echo "the service refuses kid $kid" >&2
  exit 1
fi
grep -q "^SIGNING_KID=$kid\$" service/signing.env || { echo "service/signing.env does not use $kid" >&2; exit 1; }
grep -q "\"kid\": \"$kid\"" public/jwks.json || { echo "public/jwks.json does not serve $kid" >&2; exit 1; }
