#!/usr/bin/env bash
# What the SageMaker Python SDK's local mode needs, kept out of the project's own venv:
#   - the SDK v2 (`sagemaker<3`: v3 has no Estimator, Model or local mode) in a side venv, pinned;
#   - docker-compose, which local mode shells out to; Debian's package when neither `docker compose` nor
#     `docker-compose` is on PATH.
# Idempotent and quick once done. Prints the side venv's python on stdout (the last line).
#
#   tests/container/sdk_local_mode/setup.sh        install what is missing
#   FLEETCAST_SDK_VENV=/path ...                   choose where the side venv lives
set -euo pipefail

readonly SDK_REQUIREMENT=sagemaker==2.257.7
readonly CACHE_ROOT=${XDG_CACHE_HOME:-$HOME/.cache}/fleetcast
VENV=${FLEETCAST_SDK_VENV:-$CACHE_ROOT/sagemaker-sdk-2.257.7}
readonly VENV

log() { printf 'sdk-local-mode setup: %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

compose_available() {
    command -v docker-compose >/dev/null 2>&1 || docker compose version >/dev/null 2>&1
}

if ! compose_available; then
    command -v apt-get >/dev/null || die "no docker-compose, and no apt-get to install Debian's"
    [[ $(id -u) == 0 ]] || die "no docker-compose; installing Debian's needs root (apt-get install docker-compose)"
    log "apt-get install docker-compose"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose >&2
fi

python=$(command -v python3.11 || command -v python3) || die "no python3 to build the side venv with"
stamp=$VENV/.fleetcast-installed
if [[ ! -f $stamp || $(<"$stamp") != "$SDK_REQUIREMENT" ]]; then
    log "creating $VENV with $SDK_REQUIREMENT"
    rm -rf "$VENV"
    "$python" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$SDK_REQUIREMENT" >&2
    printf '%s' "$SDK_REQUIREMENT" >"$stamp"
fi
printf '%s\n' "$VENV/bin/python"
