# syntax=docker/dockerfile:1
#
# sessiond container image: the release build, copied into a distroless runtime that has no
# shell, no package manager and runs as a non-root user.
#
#   docker build --build-arg SESSIOND_GIT_REVISION="$(git rev-parse --short=12 HEAD)" -t sessiond:0.1.0 .
#   docker run --rm -p 8080:8080 -e SESSIOND_REDIS_URL=redis://redis.example:6379/0 sessiond:0.1.0
#
# See docs/DEPLOY.md. ci/check-deploy checks this file against docker-compose.yml, .env.example,
# the Helm chart and .ci/run (same port, same release build); CI has no Docker engine, so the
# image itself is built by whoever publishes it.

# ---- build -----------------------------------------------------------------------------------
# Both base images are pinned. The builder is the exact Rust release CI builds and tests with:
# ci/check-deploy compares this tag with `rustc --version` on the CI machine and fails when they
# differ. To update: install the new toolchain where CI runs, change the tag here to
# rust:<that rustc version>-slim-bookworm, and keep bookworm as long as the runtime below is
# Debian 12 (the binary must not need a newer glibc than the runtime has).
FROM rust:1.95.0-slim-bookworm AS builder
# build.rs records the git revision for the sessiond_build_info metric and the image label;
# .git is not in the build context, so pass it in:
#   docker build --build-arg SESSIOND_GIT_REVISION="$(git rev-parse --short=12 HEAD)" -t sessiond:0.1.0 .
# Without it the build warns, and the metric and label say "unknown".
ARG SESSIOND_GIT_REVISION
WORKDIR /src
COPY . .
# Exactly the release build CI runs and tests. The cache mounts keep the crate registry and
# the target directory between builds (BuildKit); the binary is copied out of the cached
# target directory so the next stage can see it. An empty SESSIOND_GIT_REVISION is unset, so
# that the metric says "unknown" rather than "".
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target,sharing=locked \
    if [ -z "${SESSIOND_GIT_REVISION}" ]; then \
      echo "warning: no --build-arg SESSIOND_GIT_REVISION, so sessiond_build_info says revision=unknown" >&2; \
      unset SESSIOND_GIT_REVISION; \
    fi \
 && cargo build --release --locked \
 && install -D -m 0755 target/release/sessiond /out/sessiond

# ---- runtime ---------------------------------------------------------------------------------
# distroless/cc: glibc, libgcc, libstdc++, libssl, CA certificates, tzdata; no shell. Debian 12,
# the same glibc as the bookworm builder above. ":nonroot" defaults to uid 65532.
# Pinning: distroless publishes no versioned tags, only moving ones (latest, nonroot, debug) and
# digests. No digest is written here because none could be established where this file was
# last changed (no registry access); do not copy one from anywhere you cannot verify. To pin
# it, resolve the tag on a machine that can reach gcr.io and append the digest:
#   crane digest gcr.io/distroless/cc-debian12:nonroot     (or: docker buildx imagetools inspect)
#   FROM gcr.io/distroless/cc-debian12:nonroot@sha256:<that digest>
# ci/check-deploy accepts this tag alone or with a sha256 digest, nothing else.
FROM gcr.io/distroless/cc-debian12:nonroot
# OCI labels: version is the crate's (ci/check-deploy compares it with Cargo.toml), revision the
# commit passed as SESSIOND_GIT_REVISION, source the repository (the same URL as the Helm
# chart's Chart.yaml home; ci/check-deploy compares them).
ARG SESSIOND_GIT_REVISION
LABEL org.opencontainers.image.title="sessiond" \
      org.opencontainers.image.description="Stateless JSON-RPC session-token service backed by Redis" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.revision="${SESSIOND_GIT_REVISION:-unknown}" \
      org.opencontainers.image.source="https://git.example.com/platform/sessiond"
COPY --from=builder /out/sessiond /usr/local/bin/sessiond
ENV SESSIOND_LISTEN=0.0.0.0:8080
# The build already keeps mimalloc from asking for transparent huge pages; on a host whose THP
# mode is "always" the kernel would still back its memory with 2 MiB pages. This turns THP off
# for the process whatever the host's mode (docs/OPERATING.md, "Memory").
ENV MIMALLOC_ALLOW_THP=0
# Numeric uid:gid (distroless "nonroot", 65532) so Kubernetes' runAsNonRoot can verify it.
USER 65532:65532
EXPOSE 8080
# No shell or curl in this image: the binary probes its own /healthz and exits 0 or 1.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/sessiond", "healthcheck"]
# Exec form: sessiond is PID 1 and receives SIGTERM itself: /readyz 503, the listener closed,
# idle connections drained for SESSIOND_DRAIN_MS, exit 0 (docs/DEPLOY.md, "Rollouts without
# lost calls"). `docker stop` waits 10 s by default before SIGKILL: give it --time (compose:
# stop_grace_period) above SESSIOND_SHUTDOWN_TIMEOUT_MS.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/sessiond"]
