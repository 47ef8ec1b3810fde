#!/bin/sh
# Stands in for `docker compose up -d --force-recreate "$1"`: the container rereads its
# env file. Replace with the real command on the host.
set -eu
echo "recreated $1" >> recreated.log
