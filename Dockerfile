# The version-sidecar image: a virtualenv built in one stage, copied into a clean one.
#
#   docker build --build-arg VERSION=1a2b3c4 -t version-sidecar:1a2b3c4 .
#
# BASE_IMAGE: any Debian-like image with python3 (3.11+) and its venv module.
# Offline builds: put wheels of the sidecar's dependencies (and hatchling) in wheelhouse/ and
# pass --build-arg PIP_NO_INDEX=1; pip reads PIP_* build args as its own settings.
ARG BASE_IMAGE=python:3.12-slim

FROM ${BASE_IMAGE} AS build
ARG PIP_NO_INDEX=0
ARG PIP_FIND_LINKS=/src
ARG PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# The dependencies first, in a layer of their own that only pyproject.toml (and the wheelhouse)
# can change, so a change to the sidecar's code does not install them again. The wheels of
# wheelhouse/, when it exists, land in /src (COPY takes a folder's content; the pattern may
# match nothing).
COPY pyproject.toml wheelhouse* ./
RUN python3 -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"], sep="\n")' \
        > requirements.txt \
    && python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir -r requirements.txt
# Then the sidecar itself. README.md stays out of the build (.dockerignore): build.sh versions
# this image by the files it is built from, and a docs-only commit must not replace a running
# sidecar. hatchling only needs the readme pyproject.toml names to exist: a stand-in does.
# pip leaves the venv once it has installed the sidecar: the final image needs neither.
COPY LICENSE ./
COPY sidecar/ sidecar/
COPY client/ client/
RUN echo "version-sidecar: see README.md in its source repository" > README.md \
    && /opt/venv/bin/pip install --no-cache-dir --no-deps . \
    && /opt/venv/bin/python -m pip uninstall --yes --quiet pip

FROM ${BASE_IMAGE}
COPY --from=build /opt/venv /opt/venv
# SIDECAR_HOST: in a container, listen on every interface (the sidecar's default is 127.0.0.1).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    SIDECAR_HOST=0.0.0.0 \
    SIDECAR_PORT=8080
# Any non-root uid works; to read the Docker socket, add its group (compose: group_add).
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ['SIDECAR_PORT'] + '/healthz', timeout=2)"]
ENTRYPOINT ["version-sidecar"]

# Last, so a new version reuses every layer above.
ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED=unknown
ARG SOURCE=unknown
LABEL org.opencontainers.image.title="version-sidecar" \
      org.opencontainers.image.description="Tells every open browser tab when a new version of the app is out" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}"
# What the default env source announces, so an image built per deploy needs no other
# setting. The docker source ignores it.
ENV APP_VERSION=${VERSION}
