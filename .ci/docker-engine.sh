#!/usr/bin/env bash
# Provide a Docker engine for building and testing the fleetcast image.
#
#   .ci/docker-engine.sh [start]   make an engine reachable; print the DOCKER_HOST to use (stdout, one line)
#   .ci/docker-engine.sh stop      stop the private engine this script started (by its PID)
#   .ci/docker-engine.sh status    print the private engine's DOCKER_HOST if it runs; exit 1 if not
#
# An engine that is already reachable (DOCKER_HOST or the default socket) is used as it is. Otherwise
# Debian's docker.io is installed if needed and a private dockerd is started with its own data root, exec
# root, pid file and socket under $FLEETCAST_DOCKER_DIR (default /tmp/fleetcast-docker). The data root is
# kept between runs, so the layer cache and the base image survive a stop.
#
# No container registry is reachable on the project's machines, so when the engine has no
# `python:3.11-slim` (and cannot pull it) a stand-in with that exact name is built from Debian bookworm with
# mmdebstrap. An existing image of that name, real or stand-in, is never replaced.
set -euo pipefail

readonly BASE_IMAGE=python:3.11-slim
ENGINE_DIR=${FLEETCAST_DOCKER_DIR:-/tmp/fleetcast-docker}
readonly ENGINE_DIR
readonly SOCKET=$ENGINE_DIR/docker.sock
readonly PIDFILE=$ENGINE_DIR/dockerd.pid
readonly ENGINE_LOG=$ENGINE_DIR/dockerd.log
readonly PRIVATE_HOST=unix://$SOCKET
readonly DEBIAN_MIRROR=${FLEETCAST_DEBIAN_MIRROR:-http://deb.debian.org/debian}
readonly DEBIAN_SECURITY_MIRROR=${FLEETCAST_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
readonly HOST_CA_DIR=/usr/local/share/ca-certificates

log() { printf 'docker-engine: %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

apt_updated=false
apt_install() {
    command -v apt-get >/dev/null || die "apt-get not found; install $* by hand"
    [[ $(id -u) == 0 ]] || die "installing $* needs root (run as root, or install it yourself)"
    if [[ $apt_updated == false ]]; then
        log "apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
        apt_updated=true
    fi
    log "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

# True when a docker client can talk to an engine at the given DOCKER_HOST ("" = the client's default).
engine_answers() {
    DOCKER_HOST=$1 timeout 20 docker version --format '{{.Server.Version}}' >/dev/null 2>&1
}

private_pid() {
    local pid
    [[ -s $PIDFILE ]] || return 1
    pid=$(<"$PIDFILE")
    [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && [[ $(ps -o comm= -p "$pid") == dockerd ]] || return 1
    printf '%s\n' "$pid"
}

start_private_engine() {
    command -v dockerd >/dev/null || apt_install docker.io
    command -v docker >/dev/null || die "no docker client on PATH after installing docker.io"
    mkdir -p "$ENGINE_DIR/data" "$ENGINE_DIR/exec"
    rm -f "$SOCKET"
    log "starting dockerd (data root $ENGINE_DIR/data, log $ENGINE_LOG)"
    # setsid + nohup: the engine outlives the shell that started it; `stop` ends it by its PID.
    setsid nohup dockerd \
        --data-root "$ENGINE_DIR/data" \
        --exec-root "$ENGINE_DIR/exec" \
        --pidfile "$PIDFILE" \
        -H "$PRIVATE_HOST" \
        >"$ENGINE_LOG" 2>&1 </dev/null &
    local launcher=$! waited=0
    until engine_answers "$PRIVATE_HOST"; do
        if ! kill -0 "$launcher" 2>/dev/null; then
            tail -n 20 "$ENGINE_LOG" >&2 || true
            die "dockerd exited during start-up (full log: $ENGINE_LOG)"
        fi
        ((waited += 1))
        ((waited <= 60)) || die "dockerd did not answer within 60 s (log: $ENGINE_LOG)"
        sleep 1
    done
    log "dockerd is up (pid $(private_pid || echo "$launcher"), ${waited}s)"
}

# Build the python:3.11-slim stand-in: Debian bookworm with its python3 (in /usr/bin), pip usable as root,
# and the host's extra CA certificates (HTTPS from these machines goes through a proxy that needs them).
build_stand_in_base() {
    command -v mmdebstrap >/dev/null || apt_install mmdebstrap
    local work
    work=$(mktemp -d "${TMPDIR:-/tmp}/fleetcast-base.XXXXXX")
    # shellcheck disable=SC2064  # expand $work now: the trap must remove this very directory
    trap "rm -rf '$work'" RETURN
    log "building the $BASE_IMAGE stand-in with mmdebstrap (about 1-2 minutes)"
    # shellcheck disable=SC2016  # mmdebstrap expands $1 (the rootfs) itself
    local hooks=(
        --customize-hook='rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED'
        --customize-hook='ln -sf python3 "$1/usr/bin/python"; ln -sf pip3 "$1/usr/bin/pip"'
    )
    if compgen -G "$HOST_CA_DIR/*.crt" >/dev/null; then
        # shellcheck disable=SC2016  # mmdebstrap expands $1 (the rootfs) itself
        hooks+=(
            --customize-hook="mkdir -p \"\$1$HOST_CA_DIR\" && cp $HOST_CA_DIR/*.crt \"\$1$HOST_CA_DIR/\""
            --customize-hook='chroot "$1" update-ca-certificates >/dev/null'
        )
    fi
    # Sources are always given explicitly: without them mmdebstrap reads a sources.list from a non-tty stdin.
    mmdebstrap --quiet --variant=minbase \
        --include=python3,python3-venv,python3-pip,python3-dev,ca-certificates \
        "${hooks[@]}" \
        bookworm "$work/rootfs.tar" \
        "deb $DEBIAN_MIRROR bookworm main" \
        "deb $DEBIAN_MIRROR bookworm-updates main" \
        "deb $DEBIAN_SECURITY_MIRROR bookworm-security main" </dev/null >&2
    local changes=(
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
        --change 'ENV LANG=C.UTF-8'
        --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt'
        --change 'CMD ["python3"]'
    )
    local var
    for var in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
        if [[ -n ${!var:-} ]]; then
            changes+=(--change "ENV $var=${!var}")
        fi
    done
    docker import "${changes[@]}" --message "fleetcast stand-in for $BASE_IMAGE (Debian bookworm)" \
        "$work/rootfs.tar" "$BASE_IMAGE" >/dev/null
    log "imported $BASE_IMAGE ($(docker image inspect --format '{{.Size}}' "$BASE_IMAGE") bytes)"
}

ensure_base_image() {
    local private=$1
    if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
        return
    fi
    # A user's own engine may reach a registry; ours never does (no registry is reachable here).
    if [[ $private == false ]] && timeout 300 docker pull "$BASE_IMAGE" >&2; then
        return
    fi
    build_stand_in_base
}

cmd_start() {
    command -v docker >/dev/null || command -v dockerd >/dev/null || apt_install docker.io
    local host private=false
    if engine_answers "${DOCKER_HOST:-}"; then
        host=${DOCKER_HOST:-unix:///var/run/docker.sock}
        log "using the running engine at $host"
    elif private_pid >/dev/null && engine_answers "$PRIVATE_HOST"; then
        host=$PRIVATE_HOST private=true
        log "using the private engine already running at $host"
    else
        start_private_engine
        host=$PRIVATE_HOST private=true
    fi
    export DOCKER_HOST=$host
    ensure_base_image "$private"
    printf '%s\n' "$host"
}

cmd_stop() {
    local pid waited=0
    if ! pid=$(private_pid); then
        log "no private engine running (pid file $PIDFILE)"
        return 0
    fi
    log "stopping dockerd (pid $pid)"
    kill -TERM "$pid"
    while kill -0 "$pid" 2>/dev/null; do
        ((waited += 1))
        if ((waited > 30)); then
            log "dockerd ignored SIGTERM for 30 s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 1
    done
}

cmd_status() {
    private_pid >/dev/null && engine_answers "$PRIVATE_HOST" || return 1
    printf '%s\n' "$PRIVATE_HOST"
}

case ${1:-start} in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
*) die "usage: $0 [start|stop|status]" ;;
esac
