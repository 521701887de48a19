# syntax=docker/dockerfile:1
# fhir-bulk: one image with the three release binaries (bulk-api, bulk-worker,
# fhir-bulk), running as a non-root user on distroless (glibc, CA certificates,
# no shell, no package manager). The same binaries as `make release`.
#
#   docker build -t fhir-bulk .
#   docker run --rm -p 8080:8080 fhir-bulk                                    # the API (default)
#   docker run --rm --entrypoint /usr/local/bin/bulk-worker fhir-bulk         # a worker
#   docker run --rm --entrypoint /usr/local/bin/fhir-bulk fhir-bulk --help    # the CLI
#
# Kubernetes picks the binary with `command:` (deploy/base). Checked with
# hadolint by scripts/validate-manifests.sh.

ARG RUST_IMAGE=rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

# ---------------------------------------------------------------------------
# Dependency recipe: the workspace's manifests, the lock file, and an empty
# stand-in for every target. Its content changes only when dependencies or
# targets change, so the dependency layer below stays cached across source
# edits (the idea of cargo-chef, in a few lines of shell).
FROM ${RUST_IMAGE} AS recipe
WORKDIR /src
COPY . .
RUN set -eu; \
    mkdir -p /recipe; \
    cp Cargo.toml Cargo.lock /recipe/; \
    for manifest in crates/*/Cargo.toml tests/Cargo.toml; do \
      dir=$(dirname "$manifest"); \
      mkdir -p "/recipe/$dir"; \
      cp "$manifest" "/recipe/$manifest"; \
      [ ! -f "$dir/build.rs" ] || cp "$dir/build.rs" "/recipe/$dir/build.rs"; \
      targets=$(sed -n 's/^path *= *"\([^"]*\)".*/\1/p' "$manifest"); \
      for t in src/lib.rs src/main.rs $targets; do \
        [ -f "$dir/$t" ] || continue; \
        mkdir -p "/recipe/$dir/$(dirname "$t")"; \
        if [ "$t" = src/lib.rs ]; then : > "/recipe/$dir/$t"; else echo 'fn main() {}' > "/recipe/$dir/$t"; fi; \
      done; \
    done

# ---------------------------------------------------------------------------
FROM ${RUST_IMAGE} AS builder
WORKDIR /src
ENV CARGO_TERM_COLOR=never \
    CARGO_INCREMENTAL=0
# Dependencies first. --locked: build exactly Cargo.lock (it pins a yanked
# crate, core2 0.4.0, which only a locked build will still use).
COPY --from=recipe /recipe/ ./
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    cargo build --release --locked --bin bulk-api --bin bulk-worker --bin fhir-bulk
# Then the sources. COPY keeps the files' old modification times, which cargo
# would take as older than the stand-ins it just built: touch them.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    find crates tests -type f -exec touch {} + \
 && cargo build --release --locked --bin bulk-api --bin bulk-worker --bin fhir-bulk \
 && mkdir -p /out \
 && cp target/release/bulk-api target/release/bulk-worker target/release/fhir-bulk /out/

# ---------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE}
LABEL org.opencontainers.image.title="fhir-bulk" \
      org.opencontainers.image.description="FHIR R4 Bulk Data \$export service: bulk-api, bulk-worker and the fhir-bulk CLI" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/ /usr/local/bin/
# uid/gid 10001, no entry in /etc/passwd needed; the manifests run as the same ids.
USER 10001:10001
# Listen on the pod's address rather than the code's loopback default.
ENV BULK__SERVER__LISTEN=0.0.0.0:8080
# 8080: bulk-api (API, /healthz, /readyz, /metrics); 9090: bulk-worker's admin port.
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/bulk-api"]
