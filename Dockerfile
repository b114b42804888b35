# syntax=docker/dockerfile:1
#
# vpn-pbr-operator images: the operator (default target) and the local VPC API emulator
# (`emulator` target). Both final stages are `FROM scratch`: one statically linked binary, the CA
# certificates, an /etc/passwd line for the non-root user 65532. No shell, no package manager,
# no libc to patch.
#
# Where the binaries come from is chosen with the BINARIES build argument:
#
#   BINARIES=source (default): compiled in the `source` stage on a Rust image; what a normal
#   Docker/BuildKit machine does:
#
#     docker build -t vpn-pbr-operator:0.1.0 .
#     docker build --target emulator -t vpc-emulator:0.1.0 .
#
#   BINARIES=prebuilt: taken from the build context, which is then a directory holding
#   `vpn-pbr-operator`, `vpc-emulator`, `ca-certificates.crt` and `passwd` (hack/image/build.sh
#   fills it from a host build with the same flags as the `source` stage). No image is pulled at
#   all, which is how this repository builds its images on machines without registry access:
#
#     hack/image/build.sh      # cargo build on the host, then buildah with BINARIES=prebuilt
#
# Static binaries: the release build targets the host's `*-unknown-linux-gnu` triple with
# `-C target-feature=+crt-static`. glibc's static getaddrinfo resolves /etc/hosts and DNS by
# itself (files and dns are built into libc since glibc 2.34), TLS is rustls with ring (no
# OpenSSL), and the trust store is the CA bundle copied below (found by rustls-native-certs at
# /etc/ssl/certs/ca-certificates.crt).
#
# The Rust image is pinned by tag here; release builds should pin it by digest as well
# (FROM rust:1.95-bookworm@sha256:...).

ARG BINARIES=source

############################################################################ source (default)
# Compiles both binaries. BuildKit skips this stage when BINARIES=prebuilt.
FROM rust:1.95-bookworm AS source
WORKDIR /src
# Only what the build reads: the workspace manifests and sources (see .dockerignore).
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY crates ./crates
# BuildKit cache mounts keep the crate registry and the target directory between builds; the
# binaries are copied out of the cached target dir because cache mounts are not part of a layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    triple=$(rustc -vV | sed -n 's/^host: //p') \
 && RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked --target "$triple" \
      -p vpn-pbr-operator --bin vpn-pbr-operator -p vpc-emulator --bin vpc-emulator \
 && install -D -m 0755 "target/$triple/release/vpn-pbr-operator" /out/vpn-pbr-operator \
 && install -D -m 0755 "target/$triple/release/vpc-emulator" /out/vpc-emulator \
 && install -m 0644 /etc/ssl/certs/ca-certificates.crt /out/ca-certificates.crt \
 && echo 'nonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin' > /out/passwd

############################################################################ prebuilt
# The same four files from the build context (BINARIES=prebuilt); skipped otherwise.
FROM scratch AS prebuilt
COPY vpn-pbr-operator vpc-emulator ca-certificates.crt passwd /out/

############################################################################ binaries
FROM ${BINARIES} AS binaries

############################################################################ emulator
# The stateful, signature-checking VPC API emulator, for staging clusters and demos.
# Give it a config file (--config / VPC_EMULATOR_CONFIG), e.g. from a ConfigMap.
FROM scratch AS emulator
COPY --from=binaries /out/passwd /etc/passwd
COPY --from=binaries /out/vpc-emulator /usr/local/bin/vpc-emulator
USER 65532:65532
ENV VPC_EMULATOR_LISTEN=0.0.0.0:9080
EXPOSE 9080
ENTRYPOINT ["/usr/local/bin/vpc-emulator"]

############################################################################ operator (default)
FROM scratch AS operator
LABEL org.opencontainers.image.title="vpn-pbr-operator" \
      org.opencontainers.image.description="Kubernetes operator for Alibaba Cloud VPN gateway policy-based routes" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=binaries /out/passwd /etc/passwd
# HTTPS to the VPC API and STS.
COPY --from=binaries /out/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=binaries /out/vpn-pbr-operator /usr/local/bin/vpn-pbr-operator
# The chart runs the pod with the same UID, a read-only root filesystem and an emptyDir on /tmp.
USER 65532:65532
# Metrics, /healthz and /readyz (--metrics-addr, default 0.0.0.0:8080).
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/vpn-pbr-operator"]
