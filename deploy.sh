#!/usr/bin/env bash
# Deploy the compose project: build the images (build.sh), `compose up -d`, wait until the new
# app is healthy, and say what was done. Open tabs are then told by the sidecar. The example app
# by default; any app through the variables --help lists.
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: ./deploy.sh [--version VERSION] [--dry-run] [--timeout SECONDS]

Deploys the compose project in the folder this script is in (the app, the version sidecar,
nginx in front; by default this repository's example):
  1. takes the version from `git rev-parse --short HEAD` ("-dirty" when tracked files have
     changes), or from --version;
  2. builds the app and sidecar images with that version as build arg and label (build.sh);
  3. runs `docker compose up -d` (the Compose v2 plugin where present, else docker-compose)
     with APP_VERSION and SIDECAR_VERSION set, so the compose file runs the new images;
  4. waits until the app's new containers are healthy (or running, without a healthcheck)
     and carry the new version in their image's org.opencontainers.image.version label.
Exits non-zero on any failure: no git, no docker, a failed build, an unhealthy app.

Needs bash 4.4 or newer and Linux (GNU stat and date), git, and a docker client with Compose
(the plugin, or docker-compose).

Options:
  --version VERSION   deploy VERSION instead of the git SHA
  -n, --dry-run       print what would run, change nothing
  --timeout SECONDS   how long to wait for the app to become healthy (default 120)
  -h, --help          show this help

Environment (every variable it reads; build.sh's follow):
  APP_SERVICE         the app's compose service (default: app)
  SIDECAR_SERVICE     the sidecar's compose service (default: sidecar)
  NGINX_SERVICE       the compose service reloaded when the sidecar is replaced, so it looks
                      the sidecar's new address up (default: nginx; empty: none, reload your
                      proxy yourself)
  COMPOSE_FILE        the compose file(s), read by compose itself (default: compose's own
                      search, docker-compose.yml or compose.yaml)
  COMPOSE_PROJECT_NAME  the compose project (default: this folder's name, as compose makes it)
  DOCKER_HOST         the engine (default: the docker client's own)
  DOCKER_SOCKET       the engine's socket, mounted into the sidecar (default: DOCKER_HOST's
                      unix:// path, else /var/run/docker.sock)
  DOCKER_SOCKET_GID   the socket's group, added to the sidecar's user (default: read from
                      the socket)
  HTTP_ADDRESS, HTTP_PORT  where nginx listens, for the compose file and the last line
                      (default 127.0.0.1:8000)
  DOCKER              docker client to use (default: docker)
and what build.sh reads (deploy.sh runs it):
USAGE
    ./build.sh --help | sed -n '/^Environment/,$p' | tail -n +2
    cat <<'USAGE'
Set for compose: APP_VERSION, SIDECAR_VERSION, COMPOSE_PROJECT_NAME, SIDECAR_DOCKER_PROJECT
(= COMPOSE_PROJECT_NAME: the sidecar follows this project's app only), DOCKER_SOCKET and
DOCKER_SOCKET_GID.
USAGE
}

die() {
    echo "deploy.sh: error: $*" >&2
    exit 1
}

# Empty arrays under `set -u` and mapfile need bash 4.4 (macOS ships 3.2 as /bin/bash).
if ((BASH_VERSINFO[0] < 4 || (BASH_VERSINFO[0] == 4 && BASH_VERSINFO[1] < 4))); then
    die "needs bash 4.4 or newer (this is $BASH_VERSION)"
fi

say() {
    echo "deploy.sh: $*" >&2
}

cd "$(dirname "${BASH_SOURCE[0]}")"
DOCKER="${DOCKER:-docker}"
APP_SERVICE="${APP_SERVICE:-app}"
SIDECAR_SERVICE="${SIDECAR_SERVICE:-sidecar}"
NGINX_SERVICE="${NGINX_SERVICE-nginx}"
version_args=()
dry_run=false
timeout=120
while [[ $# -gt 0 ]]; do
    case "$1" in
        --version)
            [[ $# -ge 2 && -n "$2" ]] || die "--version needs a value"
            version_args=(--version "$2")
            shift 2
            ;;
        --version=*)
            version_args=(--version "${1#*=}")
            shift
            ;;
        -n | --dry-run)
            dry_run=true
            shift
            ;;
        --timeout)
            [[ $# -ge 2 && "$2" =~ ^[0-9]+$ ]] || die "--timeout needs a whole number of seconds"
            timeout="$2"
            shift 2
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done

command -v "$DOCKER" >/dev/null 2>&1 || die "docker not found ($DOCKER): install Docker or set DOCKER"
if "$DOCKER" compose version >/dev/null 2>&1; then
    compose=("$DOCKER" compose)
elif command -v docker-compose >/dev/null 2>&1; then
    compose=(docker-compose)
else
    die "neither the Compose plugin ($DOCKER compose) nor docker-compose is installed"
fi

# The versions build.sh will use (it fails on no git / no commit without --version).
versions="$(./build.sh "${version_args[@]}" --print-versions)" || exit 1
APP_VERSION="$(sed -n 's/^APP_VERSION=//p' <<<"$versions")"
SIDECAR_VERSION="$(sed -n 's/^SIDECAR_VERSION=//p' <<<"$versions")"
export APP_VERSION SIDECAR_VERSION

# The project name as Compose derives it, passed on explicitly so the sidecar follows this
# project's app only.
default_project="$(basename "$(pwd)" | tr '[:upper:]' '[:lower:]' | tr -cd 'a-z0-9_-')"
COMPOSE_PROJECT_NAME="${COMPOSE_PROJECT_NAME:-$default_project}"
SIDECAR_DOCKER_PROJECT="$COMPOSE_PROJECT_NAME"
export COMPOSE_PROJECT_NAME SIDECAR_DOCKER_PROJECT

# The engine's socket, mounted read-only into the sidecar, and its group for the sidecar's user.
if [[ -z "${DOCKER_SOCKET:-}" ]]; then
    DOCKER_SOCKET=/var/run/docker.sock
    if [[ "${DOCKER_HOST:-}" == unix://* ]]; then
        DOCKER_SOCKET="${DOCKER_HOST#unix://}"
    fi
fi
if [[ -S "$DOCKER_SOCKET" ]]; then
    DOCKER_SOCKET_GID="${DOCKER_SOCKET_GID:-$(stat -c %g "$DOCKER_SOCKET")}"
    export DOCKER_SOCKET_GID
fi
export DOCKER_SOCKET

run() {
    echo "+ $*" >&2
    $dry_run || "$@"
}

say "deploying app $APP_VERSION (sidecar $SIDECAR_VERSION, project $COMPOSE_PROJECT_NAME)"
build_flags=()
$dry_run && build_flags=(--dry-run)
./build.sh "${version_args[@]}" "${build_flags[@]}" || die "build failed"
sidecar_before=""
$dry_run || sidecar_before="$("${compose[@]}" ps -q "$SIDECAR_SERVICE" 2>/dev/null || true)"
# Compose fails when a service that others wait for turns unhealthy; the wait below then says
# which app container failed, and why.
up_failed=false
run "${compose[@]}" up -d --no-build || up_failed=true
if $dry_run; then
    say "dry run: nothing was changed"
    exit 0
fi

# state_of CONTAINER: "HEALTH RESTARTS VERSION" from one inspect. HEALTH is healthy, unhealthy
# or starting while it runs (healthy when it has no healthcheck), else its state: created,
# restarting, exited...; RESTARTS counts its restart policy's restarts (a crash loop when > 0);
# VERSION is its image's version label (may be empty). docker's errors go to $inspect_errors.
inspect_errors="$(mktemp)"
trap 'rm -f "$inspect_errors"' EXIT
state_of() {
    "$DOCKER" inspect --format \
        '{{if ne .State.Status "running"}}{{.State.Status}}{{else if .State.Health}}{{.State.Health.Status}}{{else}}healthy{{end}} {{.RestartCount}} {{index .Config.Labels "org.opencontainers.image.version"}}' "$1" 2>"$inspect_errors"
}

say "waiting up to ${timeout}s for the app to be healthy"
deadline=$((SECONDS + timeout))
while true; do
    mapfile -t containers < <("${compose[@]}" ps -q "$APP_SERVICE")
    [[ ${#containers[@]} -gt 0 ]] || die "no container of the service $APP_SERVICE is running"
    waiting=""
    for container in "${containers[@]}"; do
        if ! state="$(state_of "$container")"; then
            # Compose (or someone) removed it after `ps` listed it: list the containers again.
            error="$(head -n 1 "$inspect_errors")"
            if [[ "$error" == *"No such"* ]]; then
                say "the app container ${container:0:12} went away while being checked; looking again"
                waiting="${container:0:12} went away"
                break
            fi
            die "reading the app container ${container:0:12} failed: $error"
        fi
        read -r health restarts running_version <<<"$state"
        # Compose gave up because the app turned unhealthy; a crash-looping container may be
        # caught just after a restart, when its health reads "starting" again.
        if $up_failed && [[ "$health" == starting ]] && ((restarts > 0)); then
            health=restarting
        fi
        case "$health" in
            unhealthy | exited | dead | restarting)
                "$DOCKER" inspect --format '{{if .State.Health}}{{range .State.Health.Log}}{{.Output}}{{end}}{{end}}' "$container" 2>/dev/null >&2 || true
                "${compose[@]}" logs --tail 20 "$APP_SERVICE" >&2 || true
                die "the app container ${container:0:12} is $health (version $running_version)"
                ;;
        esac
        if [[ "$health" != healthy || "$running_version" != "$APP_VERSION" ]]; then
            waiting="${container:0:12} is $health with version $running_version"
        fi
    done
    [[ -n "$waiting" ]] || break
    $up_failed && die "compose up failed while $waiting"
    ((SECONDS < deadline)) || die "the app is not healthy after ${timeout}s: $waiting"
    sleep 1
done

$up_failed && die "compose up failed (see its output above), although the app is healthy"

# nginx looks the sidecar's name up when it starts; a new sidecar container (a deploy that
# changed the sidecar) may have a new address, so nginx reloads to look again. Caddy and HAProxy
# (compose.caddy.yml, compose.haproxy.yml) look names up as they go, and nginx does not run then.
sidecar_after="$("${compose[@]}" ps -q "$SIDECAR_SERVICE")"
if [[ -n "$sidecar_before" && "$sidecar_after" != "$sidecar_before" ]]; then
    nginx_running=""
    if [[ -n "$NGINX_SERVICE" ]]; then
        nginx_running="$("${compose[@]}" ps -q "$NGINX_SERVICE" 2>/dev/null || true)"
    fi
    if [[ -n "$nginx_running" ]]; then
        run "${compose[@]}" exec -T "$NGINX_SERVICE" nginx -s reload || die "reloading nginx failed"
        say "the sidecar was replaced: nginx reloaded to reach the new one"
    else
        say "the sidecar was replaced: reload your proxy so it reaches the new one"
    fi
fi
say "deployed app $APP_VERSION: ${#containers[@]} healthy container(s) of ${APP_IMAGE:-version-sidecar-example-app}:$APP_VERSION"
say "sidecar $SIDECAR_VERSION follows it; open tabs are told about $APP_VERSION"
say "open http://${HTTP_ADDRESS:-127.0.0.1}:${HTTP_PORT:-8000}/"
