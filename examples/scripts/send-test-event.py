#!/usr/bin/env python3
"""Sends a signed test webhook event (HMAC-SHA256 over "timestamp.body", Stripe-style
header `x-signature: t=...,v1=...`) to $RECEIVER_URL with the secret read from stdin;
exits 0 only if the receiver accepts it."""
import hashlib
import hmac
import os
import sys
import time
import urllib.request

secret = sys.stdin.read().strip().encode()
body = b'{"id":"evt_rotagate_probe","type":"rotagate.test"}'
t = str(int(time.time()))
signature = hmac.new(secret, t.encode() + b"." + body, hashlib.sha256).hexdigest()
request = urllib.request.Request(
    os.environ["RECEIVER_URL"],
    data=body,
    headers={"x-signature": f"t={t},v1={signature}", "content-type": "application/json"},
    method="POST",
)
try:
    with urllib.request.urlopen(request, timeout=10) as response:
        sys.exit(0 if response.status == 200 else 1)
except Exception as e:  # an HTTP error or no connection: the probe fails
    print(f"test event not accepted: {e}", file=sys.stderr)
    sys.exit(1)
