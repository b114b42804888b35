# syntax=docker/dockerfile:1
#
# vpn-pbr-operator image.
#
#   docker build -t vpn-pbr-operator:0.1.0 .                        # the operator (default target)
#   docker build --target emulator -t vpc-emulator:0.1.0 .          # the local VPC API emulator
#
# Multi-stage: the Rust toolchain stays in the builder; the runtime image holds one binary.
# Base images are pinned by tag here; release builds should pin them by digest as well
# (FROM rust:1.95-bookworm@sha256:...), which needs a registry lookup this repository's CI cannot do.

############################################################################ sources
FROM rust:1.95-bookworm AS sources
WORKDIR /src
# Only what the build reads: the workspace manifests and sources (see .dockerignore).
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY crates ./crates

############################################################################ builder
FROM sources AS builder
# BuildKit cache mounts keep the crate registry and the target directory between builds; the
# binary is copied out of the cached target dir because cache mounts are not part of the layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p vpn-pbr-operator --bin vpn-pbr-operator \
 && install -D -m 0755 target/release/vpn-pbr-operator /out/vpn-pbr-operator

############################################################################ emulator builder
# Built only when the `emulator` target is requested (BuildKit skips unused stages).
FROM sources AS emulator-builder
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p vpc-emulator --bin vpc-emulator \
 && install -D -m 0755 target/release/vpc-emulator /out/vpc-emulator

############################################################################ emulator
# The stateful, signature-checking VPC API emulator, for staging clusters and demos.
# Give it a config file (--config / VPC_EMULATOR_CONFIG), e.g. from a ConfigMap.
FROM gcr.io/distroless/cc-debian12:nonroot AS emulator
COPY --from=emulator-builder /out/vpc-emulator /usr/local/bin/vpc-emulator
USER 65532:65532
ENV VPC_EMULATOR_LISTEN=0.0.0.0:9080
EXPOSE 9080
ENTRYPOINT ["/usr/local/bin/vpc-emulator"]

############################################################################ operator (default)
# Why distroless/cc and not static/scratch: the builder targets x86_64-unknown-linux-gnu (or
# aarch64-...-gnu), so the binary is dynamically linked against glibc (libc, libm, and libgcc_s
# for unwinding). gcr.io/distroless/cc-debian12 is distroless/base (glibc, CA certificates for
# HTTPS to the VPC API and STS, tzdata, /etc/passwd with `nonroot`) plus libgcc_s, from the same
# Debian 12 release as the bookworm builder, so the glibc versions match. No shell, no package
# manager. A fully static musl build on distroless/static would be smaller but needs the musl
# target and its toolchain in the builder; not worth it for one binary.
FROM gcr.io/distroless/cc-debian12:nonroot AS operator
LABEL org.opencontainers.image.title="vpn-pbr-operator" \
      org.opencontainers.image.description="Kubernetes operator for Alibaba Cloud VPN gateway policy-based routes" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/vpn-pbr-operator /usr/local/bin/vpn-pbr-operator
# 65532 is distroless' `nonroot`; the chart runs the pod with the same UID, read-only root fs.
USER 65532:65532
# Metrics, /healthz and /readyz (--metrics-addr, default 0.0.0.0:8080).
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/vpn-pbr-operator"]
