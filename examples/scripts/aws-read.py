#!/usr/bin/env python3
"""Reads what a consumer reads from AWS, with the consumer's own credentials
(READER_AWS_ACCESS_KEY_ID, READER_AWS_SECRET_ACCESS_KEY), and exits 0 when it matches
stdin:
  aws-read.py secret NAME KEY   the JSON key KEY of the secret's AWSCURRENT version
  aws-read.py parameter NAME    the decrypted value of the parameter
"""
import json
import os
import sys

import boto3

want = sys.stdin.read()
session = boto3.session.Session(
    aws_access_key_id=os.environ["READER_AWS_ACCESS_KEY_ID"],
    aws_secret_access_key=os.environ["READER_AWS_SECRET_ACCESS_KEY"],
    region_name=os.environ.get("AWS_REGION", "us-east-1"),
)
endpoint = os.environ.get("AWS_ENDPOINT_URL") or None
kind, name = sys.argv[1], sys.argv[2]
if kind == "secret":
    client = session.client("secretsmanager", endpoint_url=endpoint)
    current = client.get_secret_value(SecretId=name, VersionStage="AWSCURRENT")
    served = json.loads(current["SecretString"]).get(sys.argv[3], "")
else:
    client = session.client("ssm", endpoint_url=endpoint)
    served = client.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
if served != want:
    print(f"{kind} {name} does not hold the new value yet", file=sys.stderr)
    sys.exit(1)
