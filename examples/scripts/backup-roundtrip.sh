#!/bin/sh
# Runbook 004, backup encryption key: encrypts a sample archive to the recipient in
# backup.env (as backup-offsite.sh does) and proves the identity on stdin decrypts it.
set -eu
umask 077
identity=$(mktemp)
trap 'rm -f "$identity" "$identity.age"' EXIT
cat > "$identity"
recipient=$(sed -n 's/^OFFSITE_BACKUP_AGE_RECIPIENT=//p' backup.env)
echo "rotagate backup round trip" | age -r "$recipient" > "$identity.age"
age -d -i "$identity" "$identity.age" | grep -q "rotagate backup round trip"
