#!/usr/bin/env bash
# Build the app image (examples/app, or your app: APP_CONTEXT) and the sidecar image, versioned
# from git and labelled with the OCI image labels. deploy.sh runs it; run it alone to only build.
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: ./build.sh [--version VERSION] [--dry-run] [--print-versions]

Builds two images, from the folder this script is in (your repository's root):
  app      APP_IMAGE:VERSION from APP_CONTEXT (default: the example app, examples/app)
  sidecar  SIDECAR_IMAGE:SIDECAR_VERSION from SIDECAR_CONTEXT (default: this repository's
           Dockerfile; in your repository, the folder holding the sidecar's Dockerfile)

VERSION is `git rev-parse --short HEAD`, with "-dirty" when tracked files have changes; it goes
in as the build args VERSION, REVISION (the full SHA), CREATED and SOURCE (the git remote).
SIDECAR_VERSION is the short SHA of the last commit that changed the files the sidecar image is
built from (SIDECAR_CONTEXT and SIDECAR_DOCKERFILE; for this repository: Dockerfile,
.dockerignore, pyproject.toml, LICENSE, sidecar/, client/), so a deploy that changes only the app
or the docs rebuilds the same sidecar image and leaves it running.

Needs bash 4.4 or newer and Linux (GNU date), git, and a docker client.

Options:
  --version VERSION   use VERSION for the app instead of the git SHA
  -n, --dry-run       print the build commands without running them
  --print-versions    print APP_VERSION=... and SIDECAR_VERSION=... and exit
  -h, --help          show this help

Environment (every variable it reads):
  APP_CONTEXT         the app's build context (default: examples/app)
  APP_DOCKERFILE      the app's Dockerfile (default: Dockerfile in APP_CONTEXT)
  APP_IMAGE           the app's image name, without tag (default: version-sidecar-example-app);
                      your compose file's app service runs APP_IMAGE:${APP_VERSION}
  SIDECAR_CONTEXT     the sidecar's build context (default: . , this repository)
  SIDECAR_DOCKERFILE  the sidecar's Dockerfile (default: Dockerfile in SIDECAR_CONTEXT)
  SIDECAR_IMAGE       the sidecar's image name, without tag (default: version-sidecar)
  SIDECAR_VERSION     the sidecar's tag, instead of the one taken from git
  BASE_IMAGE          build arg BASE_IMAGE of both builds (default: each Dockerfile's own,
                      python:3.12-slim here): for a private registry or a mirror
  BUILD_NETWORK       network for RUN steps (docker build --network), e.g. none
  PIP_NO_INDEX        build arg of both builds; 1: pip installs only from the wheelhouse/ in the
                      sidecar's build context, never from an index (docs/deploying.md)
  DOCKER              docker client to use (default: docker)
USAGE
}

die() {
    echo "build.sh: error: $*" >&2
    exit 1
}

# Empty arrays under `set -u` need bash 4.4 (macOS ships 3.2 as /bin/bash).
if ((BASH_VERSINFO[0] < 4 || (BASH_VERSINFO[0] == 4 && BASH_VERSINFO[1] < 4))); then
    die "needs bash 4.4 or newer (this is $BASH_VERSION)"
fi

cd "$(dirname "${BASH_SOURCE[0]}")"
DOCKER="${DOCKER:-docker}"
APP_CONTEXT="${APP_CONTEXT:-examples/app}"
APP_IMAGE="${APP_IMAGE:-version-sidecar-example-app}"
SIDECAR_CONTEXT="${SIDECAR_CONTEXT:-.}"
SIDECAR_IMAGE="${SIDECAR_IMAGE:-version-sidecar}"
# The files the sidecar image is built from: only a change to one of these makes a new sidecar
# image. Here, what .dockerignore lets in and the two that say how (README.md is not one);
# elsewhere, the sidecar's build context and its Dockerfile.
if [[ "$SIDECAR_CONTEXT" == . && -z "${SIDECAR_DOCKERFILE:-}" ]]; then
    SIDECAR_PATHS=(Dockerfile .dockerignore pyproject.toml LICENSE sidecar client)
else
    SIDECAR_PATHS=("$SIDECAR_CONTEXT" ${SIDECAR_DOCKERFILE:+"$SIDECAR_DOCKERFILE"})
fi

version=""
dry_run=false
print_versions=false
while [[ $# -gt 0 ]]; do
    case "$1" in
        --version)
            [[ $# -ge 2 && -n "$2" ]] || die "--version needs a value"
            version="$2"
            shift 2
            ;;
        --version=*)
            version="${1#*=}"
            shift
            ;;
        -n | --dry-run)
            dry_run=true
            shift
            ;;
        --print-versions)
            print_versions=true
            shift
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done

have_git() {
    command -v git >/dev/null 2>&1 && git rev-parse --verify -q HEAD >/dev/null 2>&1
}

# dirty PATH...: "-dirty" when tracked files under PATH (all files: no PATH) have changes.
dirty() {
    if [[ -n "$(git status --porcelain --untracked-files=no -- "$@")" ]]; then
        echo "-dirty"
    fi
}

utc_now() {
    date -u +%Y-%m-%dT%H:%M:%SZ
}

# commit_time REV: the commit's time in UTC, so a rebuild of the same commit is identical.
commit_time() {
    TZ=UTC git log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ "$1"
}

# public_url URL: the remote as it may appear in an image label, without what can hold a
# secret: user info (user:password@ or a token as user name: all before the host's last "@"), a
# query or a fragment (?private_token=...). scp-like user@host:path loses the user too.
public_url() {
    local url="${1%%[?#]*}"
    if [[ "$url" =~ ^([A-Za-z][A-Za-z0-9+.-]*://)([^/]*@)?(.*)$ ]]; then
        url="${BASH_REMATCH[1]}${BASH_REMATCH[3]}"
    elif [[ "$url" =~ ^[^/]*@([^/@]+:.*)$ ]]; then
        url="${BASH_REMATCH[1]}"
    fi
    echo "$url"
}

source_url="unknown"
if have_git; then
    source_url="$(public_url "$(git config --get remote.origin.url || echo unknown)")"
    if [[ -z "$version" ]]; then
        version="$(git rev-parse --short HEAD)$(dirty)"
    fi
    app_revision="$(git rev-parse HEAD)"
    sidecar_revision="$(git log -1 --format=%H -- "${SIDECAR_PATHS[@]}")"
    [[ -n "$sidecar_revision" ]] || sidecar_revision="$app_revision"
    sidecar_dirty="$(dirty "${SIDECAR_PATHS[@]}")"
    sidecar_version="${SIDECAR_VERSION:-$(git rev-parse --short "$sidecar_revision")$sidecar_dirty}"
    app_created="$(commit_time HEAD)"
    sidecar_created="$(commit_time "$sidecar_revision")"
    [[ -z "$(dirty)" ]] || app_created="$(utc_now)"
    [[ -z "$sidecar_dirty" ]] || sidecar_created="$(utc_now)"
else
    command -v git >/dev/null 2>&1 || [[ -n "$version" ]] || die "git not found: install git or pass --version"
    [[ -n "$version" ]] || die "$(pwd) is not a git checkout with a commit: commit first or pass --version"
    app_revision="unknown"
    sidecar_revision="unknown"
    sidecar_version="${SIDECAR_VERSION:-$version}"
    app_created="$(utc_now)"
    sidecar_created="$app_created"
fi

# A version becomes an image tag and a label: keep to what a tag allows.
for value in "$version" "$sidecar_version"; do
    [[ "$value" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] ||
        die "version '$value' is not usable as an image tag (letters, digits, _ . -, at most 128)"
done

if $print_versions; then
    echo "APP_VERSION=$version"
    echo "SIDECAR_VERSION=$sidecar_version"
    exit 0
fi

run() {
    echo "+ $*" >&2
    $dry_run || "$@"
}

for context in "$APP_CONTEXT" "$SIDECAR_CONTEXT"; do
    [[ -d "$context" ]] || die "build context $context is not a folder in $(pwd) (APP_CONTEXT, SIDECAR_CONTEXT)"
done
# The --file option, when a Dockerfile is named.
app_file=()
[[ -z "${APP_DOCKERFILE:-}" ]] || app_file=(--file "$APP_DOCKERFILE")
sidecar_file=()
[[ -z "${SIDECAR_DOCKERFILE:-}" ]] || sidecar_file=(--file "$SIDECAR_DOCKERFILE")

common=()
[[ -z "${BASE_IMAGE:-}" ]] || common+=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
[[ -z "${BUILD_NETWORK:-}" ]] || common+=(--network "$BUILD_NETWORK")
[[ -z "${PIP_NO_INDEX:-}" ]] || common+=(--build-arg "PIP_NO_INDEX=$PIP_NO_INDEX")

if ! $dry_run; then
    command -v "$DOCKER" >/dev/null 2>&1 || die "docker not found ($DOCKER): install Docker or set DOCKER"
fi

echo "build.sh: app $APP_IMAGE:$version" >&2
run "$DOCKER" build "${common[@]}" \
    --build-arg "VERSION=$version" --build-arg "REVISION=$app_revision" \
    --build-arg "CREATED=$app_created" --build-arg "SOURCE=$source_url" \
    --tag "$APP_IMAGE:$version" "${app_file[@]}" "$APP_CONTEXT" ||
    die "building the app image failed"

echo "build.sh: sidecar $SIDECAR_IMAGE:$sidecar_version" >&2
run "$DOCKER" build "${common[@]}" \
    --build-arg "VERSION=$sidecar_version" --build-arg "REVISION=$sidecar_revision" \
    --build-arg "CREATED=$sidecar_created" --build-arg "SOURCE=$source_url" \
    --tag "$SIDECAR_IMAGE:$sidecar_version" "${sidecar_file[@]}" "$SIDECAR_CONTEXT" ||
    die "building the sidecar image failed"

echo "build.sh: built $APP_IMAGE:$version and $SIDECAR_IMAGE:$sidecar_version" >&2
