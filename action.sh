#!/usr/bin/env bash
# The steps of rotagate's composite action (action.yml):
#   cache-key  the key the verified release binary is cached under for the run's jobs
#   install  put rotagate on PATH: the `binary` input (built by a job without secrets,
#            checked against `binary-sha256`), else the release binary for this runner,
#            its sha256 checked against sums/<version> committed in this action's
#            repository at this ref. Nothing is ever compiled here: this job holds the
#            rotation secrets, and a build script could read them.
#   run      validate the inputs (they arrive only as INPUT_* environment variables)
#            and run rotagate
set -euo pipefail

action_dir="${GITHUB_ACTION_PATH:-$(cd "$(dirname "$0")" && pwd)}"
bin_dir="${RUNNER_TEMP:?RUNNER_TEMP is not set: run this as a GitHub Action}/rotagate-bin"
# What actions/cache restores and saves for the other jobs of the run.
cache_dir="${RUNNER_TEMP}/rotagate-cache"

die() {
  # Messages name inputs, never their values: some are secrets.
  echo "::error title=rotagate action::$*" >&2
  exit 1
}

output() {
  printf '%s=%s\n' "$1" "$2" >>"${GITHUB_OUTPUT:?}"
}

# The release asset targets for this runner, preferred first (a static musl binary
# runs on any Linux runner, however old its glibc), or nothing.
targets() {
  case "${RUNNER_OS:-}/${RUNNER_ARCH:-}" in
    Linux/X64) echo x86_64-unknown-linux-musl x86_64-unknown-linux-gnu ;;
    Linux/ARM64) echo aarch64-unknown-linux-musl aarch64-unknown-linux-gnu ;;
    macOS/ARM64) echo aarch64-apple-darwin ;;
    macOS/X64) echo x86_64-apple-darwin ;;
    *) echo "" ;;
  esac
}

sha256_of() {
  if command -v sha256sum >/dev/null; then
    sha256sum "$1" | cut -d' ' -f1
  else
    shasum -a 256 "$1" | cut -d' ' -f1
  fi
}

# owner/name of this action when it was fetched as `uses: owner/name@ref`
# (.../_actions/<owner>/<name>/<ref>); nothing for `uses: ./`.
action_repository() {
  case "$action_dir" in
    */_actions/*/*/*)
      local rest="${action_dir#*/_actions/}"
      local owner="${rest%%/*}"
      rest="${rest#*/}"
      echo "$owner/${rest%%/*}"
      ;;
    *) echo "" ;;
  esac
}

# Where to get a binary when there is no release one: never a build in this job.
no_binary() {
  die "$1: rotagate is never compiled in the job that holds the rotation secrets. Build it in a job without secrets and pass it with the binary and binary-sha256 inputs (workflows/rotate-from-source.yml; README, On GitHub Actions)"
}

# The `binary` input: a file built elsewhere, run only if its sha256 is the one given.
install_given() {
  local given="$1" expected="${INPUT_BINARY_SHA256:-}" actual
  [[ "$expected" =~ ^[0-9a-f]{64}$ ]] ||
    die "input binary needs binary-sha256: the sha256 (64 hex digits) the build job printed for it"
  [ -f "$given" ] || die "input binary names no file"
  mkdir -p "$bin_dir"
  cp "$given" "$bin_dir/rotagate.download"
  actual="$(sha256_of "$bin_dir/rotagate.download")"
  if [ "$actual" != "$expected" ]; then
    rm -f "$bin_dir/rotagate.download"
    die "checksum mismatch for the binary input: binary-sha256 says $expected, the file is $actual; refusing to run it"
  fi
  chmod 0755 "$bin_dir/rotagate.download"
  mv "$bin_dir/rotagate.download" "$bin_dir/rotagate"
  echo "$bin_dir" >>"${GITHUB_PATH:?}"
  echo "rotagate from the binary input (sha256 $actual verified)" >&2
  output installed true
}

# Sets version, asset, expected (its sha256 from sums/) and repo for this runner's
# release binary, or fails saying what to do.
resolve() {
  version="${INPUT_VERSION:-}"
  local listed="" file
  for file in "$action_dir"/sums/*; do
    [ -f "$file" ] && listed+="${file##*/}"$'\n'
  done
  # Oldest first, a pre-release before its release; BSD sort (macOS) has no -V.
  listed="$(printf '%s' "$listed" |
    awk -F'[.-]' 'NF { print $1, $2, $3, (index($0, "-") ? 0 : 1), $0 }' |
    sort -k1,1n -k2,2n -k3,3n -k4,4n -k5,5 | awk '{ print $5 }')"
  # Tags are written v1.2.3; sums/ and the input take the bare version.
  version="${version#v}"
  if [ -n "$version" ]; then
    [[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.]+)?$ ]] ||
      die "input version is not a version number (like 1.2.3)"
    grep -qxF "$version" <<<"$listed" ||
      die "version $version is not listed in this action's sums/ directory; listed: ${listed//$'\n'/ }"
  else
    # The newest release; a pre-release only when nothing else is listed.
    version="$(grep -v -- - <<<"$listed" | tail -n 1 || true)"
    [ -n "$version" ] || version="$(tail -n 1 <<<"$listed")"
  fi
  local targets target
  targets="$(targets)"
  repo="$(action_repository)"
  if [ -z "$version" ] || [ -z "$targets" ] || [ -z "$repo" ]; then
    no_binary "no release binary for this runner (version '${version:-none listed}', target '${targets:-unsupported}', action '${repo:-local}')"
  fi
  # The first target sums/<version> lists (older releases have no musl build).
  asset=""
  expected=""
  for target in $targets; do
    expected="$(awk -v a="rotagate-$target" '$2 == a { print $1 }' "$action_dir/sums/$version")"
    if [ -n "$expected" ]; then
      asset="rotagate-$target"
      break
    fi
  done
  [ -n "$expected" ] || no_binary "sums/$version lists no rotagate-${targets// / or rotagate-}"
}

# The key the verified binary is cached under between the jobs of a run: its
# checksum, so a cached file is only ever the one sums/ lists (and is checked again).
cache_key() {
  [ -z "${INPUT_BINARY:-}" ] || return 0
  resolve
  output cache-key "rotagate-$asset-$expected"
}

install() {
  if [ -n "${INPUT_BINARY:-}" ]; then
    install_given "$INPUT_BINARY"
    return
  fi
  local version asset expected repo actual
  resolve
  mkdir -p "$bin_dir" "$cache_dir"
  if [ -f "$cache_dir/rotagate" ] && [ "$(sha256_of "$cache_dir/rotagate")" = "$expected" ]; then
    cp "$cache_dir/rotagate" "$bin_dir/rotagate.download"
    echo "rotagate $version ($asset) from this run's cache" >&2
    output downloaded false
  else
    local url="${GITHUB_SERVER_URL:-https://github.com}/$repo/releases/download/v$version/$asset"
    curl --fail --silent --show-error --location --proto '=https' --tlsv1.2 \
      --retry 4 --retry-connrefused --output "$bin_dir/rotagate.download" "$url" ||
      die "cannot download $url"
    output downloaded true
  fi
  actual="$(sha256_of "$bin_dir/rotagate.download")"
  if [ "$actual" != "$expected" ]; then
    rm -f "$bin_dir/rotagate.download"
    die "checksum mismatch for $asset $version: sums/$version says $expected, the download is $actual; refusing to run it"
  fi
  chmod 0755 "$bin_dir/rotagate.download"
  cp "$bin_dir/rotagate.download" "$cache_dir/rotagate"
  mv "$bin_dir/rotagate.download" "$bin_dir/rotagate"
  echo "$bin_dir" >>"${GITHUB_PATH:?}"
  echo "rotagate $version ($asset, sha256 $actual verified against sums/$version)" >&2
  output installed true
}

valid_id() {
  [[ "$1" =~ ^[a-z0-9][a-z0-9._-]{0,63}$ ]]
}

no_control_chars() {
  [[ "$1" != *[[:cntrl:]]* ]]
}

run() {
  local command="${INPUT_COMMAND:-run}" only="${INPUT_ONLY:-}" reason="${INPUT_REASON:-}"
  local emergency="${INPUT_EMERGENCY:-false}" config="${INPUT_CONFIG:-rotagate.yaml}"
  local -a args
  case "$emergency" in
    true | false) ;;
    *) die "input emergency must be true or false" ;;
  esac
  if [ -z "$config" ] || ! no_control_chars "$config"; then
    die "input config must be a path on one line"
  fi
  no_control_chars "$reason" || die "input reason must be one line"
  local -a ids=()
  if [ -n "$only" ]; then
    IFS=',' read -r -a ids <<<"${only// /}"
    for id in "${ids[@]}"; do
      valid_id "$id" || die "input only: '$id' is not a credential id"
    done
  fi
  one_id() {
    [ "${#ids[@]}" -eq 1 ] || die "command $command needs exactly one credential id in input only"
  }
  case "$command" in
    run) args=(run) ;;
    rotate)
      one_id
      [ -n "$reason" ] || die "command rotate needs input reason"
      args=(rotate "${ids[0]}")
      export ROTAGATE_REASON="$reason"
      [ "$emergency" = true ] && args+=(--emergency)
      ;;
    rollback) one_id; args=(rollback "${ids[0]}") ;;
    gate-reopen) one_id; args=(gate reopen "${ids[0]}") ;;
    plan) args=(plan) ;;
    matrix) args=(plan --matrix) ;;
    status) args=(status) ;;
    check) args=(check) ;;
    audit)
      [ "${#ids[@]}" -le 1 ] || die "command audit takes at most one credential id"
      args=(audit "${ids[@]}")
      ;;
    *) die "input command must be one of run, rotate, rollback, gate-reopen, plan, matrix, status, check, audit" ;;
  esac
  if [ "$command" = run ] && [ "${#ids[@]}" -gt 0 ]; then
    export ROTAGATE_ONLY="${only// /}"
  fi

  if [ -n "${INPUT_AGE_IDENTITY:-}" ]; then
    grep -q '^AGE-SECRET-KEY-1' <<<"$INPUT_AGE_IDENTITY" ||
      die "input age-identity holds no AGE-SECRET-KEY-1... line"
    export ROTAGATE_AGE_IDENTITY="$INPUT_AGE_IDENTITY"
  fi
  if [ -n "${INPUT_GITHUB_TOKEN:-}" ]; then
    export GITHUB_TOKEN="$INPUT_GITHUB_TOKEN"
  fi
  unset INPUT_AGE_IDENTITY INPUT_GITHUB_TOKEN
  export ROTAGATE_CONFIG="$config"

  # The encrypted state, copied after every save, for the artifact step.
  local slug suffix copy
  slug="${GITHUB_JOB:-job}-${command}-${only//[^a-z0-9._-]/_}"
  suffix="$(od -An -N4 -tx4 /dev/urandom | tr -d ' \n')"
  copy="${RUNNER_TEMP}/rotagate-state/${slug}-${suffix}.age"
  export ROTAGATE_STATE_COPY="$copy"
  output state-copy "$copy"
  output artifact "rotagate-state-${GITHUB_RUN_ID:-0}-${GITHUB_RUN_ATTEMPT:-1}-${slug}-${suffix}"

  exec rotagate "${args[@]}"
}

case "${1:-}" in
  cache-key) cache_key ;;
  install) install ;;
  run) run ;;
  *) die "usage: action.sh cache-key|install|run" ;;
esac
