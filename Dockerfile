# syntax=docker/dockerfile:1
#
# sessiond container image: the release build, copied into a distroless runtime that has no
# shell, no package manager and runs as a non-root user.
#
#   docker build -t sessiond:0.1.0 .
#   docker run --rm -p 8080:8080 -e SESSIOND_REDIS_URL=redis://redis.example:6379/0 sessiond:0.1.0
#
# See DEPLOY.md. ci/check-deploy checks this file against docker-compose.yml, .env.example,
# the Helm chart and .ci/run (same port, same release build); CI has no Docker engine, so the
# image itself is built by whoever publishes it.

# ---- build -----------------------------------------------------------------------------------
FROM rust:1-slim-bookworm AS builder
# build.rs records the git revision; .git is not in the build context, so pass it in:
#   docker build --build-arg SESSIOND_GIT_REVISION=$(git rev-parse --short=12 HEAD) -t sessiond:0.1.0 .
ARG SESSIOND_GIT_REVISION
WORKDIR /src
COPY . .
# Exactly the release build CI runs and tests. The cache mounts keep the crate registry and
# the target directory between builds (BuildKit); the binary is copied out of the cached
# target directory so the next stage can see it.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked \
 && install -D -m 0755 target/release/sessiond /out/sessiond

# ---- runtime ---------------------------------------------------------------------------------
# distroless/cc: glibc, libgcc, libstdc++, libssl, CA certificates, tzdata; no shell. Debian 12, the same
# glibc as the bookworm builder above. ":nonroot" defaults to uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="sessiond" \
      org.opencontainers.image.description="Stateless JSON-RPC session-token service backed by Redis" \
      org.opencontainers.image.licenses="MIT"
COPY --from=builder /out/sessiond /usr/local/bin/sessiond
ENV SESSIOND_LISTEN=0.0.0.0:8080
# Numeric uid:gid (distroless "nonroot", 65532) so Kubernetes' runAsNonRoot can verify it.
USER 65532:65532
EXPOSE 8080
# No shell or curl in this image: the binary probes its own /healthz and exits 0 or 1.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/sessiond", "healthcheck"]
# Exec form: sessiond is PID 1 and receives SIGTERM itself (graceful drain, then exit 0).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/sessiond"]
