# batch-job-exporter container image.
#
#   docker build -t batch-job-exporter .
#   docker run --rm -p 10113:10113 batch-job-exporter --demo
#   docker run --rm -p 10113:10113 --read-only --tmpfs /tmp \
#     -v "$PWD/config.yaml:/etc/batch-job-exporter/config.yaml:ro" \
#     -v batch-job-exporter-state:/var/lib/batch-job-exporter \
#     batch-job-exporter --config.file=/etc/batch-job-exporter/config.yaml \
#     --storage.path=/var/lib/batch-job-exporter/state.db
#
# The base is pinned to the Python minor version the project is tested with (the venv,
# and `make image`, whose stand-in for this base is Debian bookworm's python3, 3.11).
# Pin it by digest as well for reproducible builds:
#   --build-arg PYTHON_IMAGE=docker.io/library/python:3.11-slim-bookworm@sha256:...
ARG PYTHON_IMAGE=docker.io/library/python:3.11-slim-bookworm

# ---- build: a virtualenv holding the package and its dependencies -------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY exporter ./exporter
# `python3 -m venv` works on any Python base (/usr/local/bin/python3 on the official
# image, /usr/bin/python3 on Debian's); everything after uses /opt/venv/bin only.
# Bytecode is compiled with unchecked hashes so that the read-only runtime never tries
# to rewrite it; pip and setuptools are not needed at run time.
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --quiet --no-compile /src \
 && /opt/venv/bin/pip uninstall --quiet --yes pip setuptools \
 && /opt/venv/bin/python -m compileall -q --invalidation-mode unchecked-hash /opt/venv/lib

# ---- runtime -----------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
# CI passes --build-arg REVISION="$(git rev-parse HEAD)" CREATED="$(date -u +%FT%TZ)".
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="batch-job-exporter" \
      org.opencontainers.image.description="Prometheus exporter for vendor batch import and report jobs (Evocalize, Fullstory, Talkdesk Explore)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0"

# A fixed numeric user (65532, "nonroot" as in distroless images) so that Kubernetes'
# runAsNonRoot can verify it. The process writes nothing to the image: the root
# filesystem can be mounted read-only. The one directory the user owns is the mount
# point for --storage.path's volume, so that a new Docker named volume mounted there
# starts out writable by it (Kubernetes' fsGroup does the same for a pod's volumes).
RUN groupadd --system -K SYS_GID_MAX=65532 --gid 65532 exporter \
 && useradd --system -K SYS_UID_MAX=65532 --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin exporter \
 && install -d -o 65532 -g 65532 -m 0750 /var/lib/batch-job-exporter
COPY --from=build /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HEALTHCHECK_URL=http://127.0.0.1:10113/healthz

USER 65532:65532
EXPOSE 10113
# No curl in the image: Python's urllib does it, and any answer but 2xx fails. Set
# HEALTHCHECK_URL when --web.listen-address moves the port.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
  CMD ["/opt/venv/bin/python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['HEALTHCHECK_URL'], timeout=4)"]

ENTRYPOINT ["/opt/venv/bin/batch-job-exporter"]
CMD ["--config.file=/etc/batch-job-exporter/config.yaml"]
