#!/bin/sh
# Passes when the JWKS serves the kid given on stdin and the env file uses it.
set -eu
kid=$(cat)
grep -q "\"kid\": \"$kid\"" public/jwks.json || { echo "public/jwks.json does not serve $kid" >&2; exit 1; }
grep -q "^SIGNING_KID=$kid\$" .env || { echo ".env does not use $kid" >&2; exit 1; }
