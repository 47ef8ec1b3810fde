#!/usr/bin/env python3
"""Reads a Secret the way a pod sees it (data decoded) with the service's own read-only
token, and exits 0 when its KID is the kid on stdin."""
import base64
import json
import os
import sys
import urllib.request

want = sys.stdin.read().strip()
api = os.environ["KUBE_API"].rstrip("/")
namespace, name = sys.argv[1], sys.argv[2]
request = urllib.request.Request(
    f"{api}/api/v1/namespaces/{namespace}/secrets/{name}",
    headers={"Authorization": "Bearer " + os.environ["KUBE_READER_TOKEN"]},
)
with urllib.request.urlopen(request, timeout=10) as answer:
    secret = json.load(answer)
served = base64.b64decode(secret.get("data", {}).get("KID", "")).decode()
if served != want:
    print(f"the Secret holds kid {served or 'none'}", file=sys.stderr)
    sys.exit(1)
