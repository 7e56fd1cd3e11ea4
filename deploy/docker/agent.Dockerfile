# cohort-agent: a standalone agent image with the CUDA runtime and NCCL (the default, last stage),
# and `--target sdk`, /opt/cohort alone (binaries, static libraries, headers, CMake package) for
# an engine image to embed the agent (agent-embed.md). From the repository root:
#   docker build -f deploy/docker/agent.Dockerfile -t cohort-agent .
#   docker build -f deploy/docker/agent.Dockerfile --target sdk -t cohort-agent-sdk .
# The binaries are built on Debian 12 (deploy/install-deps.sh installs Debian 12 packages, and
# the code is built and tested against those versions), so the runtime is Debian 12 slim too;
# NVIDIA publishes no Debian CUDA image, so libcudart and NCCL (headers for the build, libraries
# for the runtime) are copied from NVIDIA's Ubuntu devel image. They depend only on glibc.
# The tag is NVIDIA's naming for CUDA 13.0 Update 1 with NCCL; it was not pulled here (no
# container engine): check that it exists and ships libnccl-dev before relying on it.
ARG CUDA_IMAGE=nvidia/cuda:13.0.1-devel-ubuntu24.04

FROM ${CUDA_IMAGE} AS cuda

# --- Build: CUDA headers and NCCL where CMakeLists.txt looks (COHORT_CUDA_ROOT=/usr/local/cuda),
# then what CI (.ci/run) runs, then `make install`. COHORT_WITH_NCCL turns on by itself.
FROM debian:12 AS builder
COPY --from=cuda /usr/local/cuda/include/ /usr/local/cuda/include/
COPY --from=cuda /usr/include/nccl.h /usr/local/cuda/include/
COPY --from=cuda /usr/local/cuda/lib64/libcudart.so* /usr/local/cuda/lib64/
COPY --from=cuda /usr/lib/*-linux-gnu/libnccl.so* /usr/local/cuda/lib64/
WORKDIR /src
COPY . .
RUN deploy/install-deps.sh
RUN make install PREFIX=/opt/cohort

# --- sdk: the whole install, nothing else; an engine's Dockerfile copies /opt/cohort from it.
FROM scratch AS sdk
COPY --from=builder /opt/cohort /opt/cohort

# --- Runtime (default): cohort-agent, its Debian libraries, libcudart and NCCL. The driver
# (libcuda.so.1) comes from the host through the NVIDIA Container Toolkit at run time.
FROM debian:12-slim AS agent
COPY deploy/docker/agent-runtime-packages.txt /tmp/runtime-packages.txt
COPY --from=cuda /usr/local/cuda/lib64/libcudart.so.13* /usr/local/cuda/lib64/
COPY --from=cuda /usr/lib/*-linux-gnu/libnccl.so.2* /usr/local/cuda/lib64/
# civetweb (HTTPS metrics) dlopens the unversioned libcrypto.so, which only libssl-dev ships: the
# link is made here instead of installing libssl-dev (libssl.so is answered by the shim).
RUN apt-get update \
 && sed 's/#.*//' /tmp/runtime-packages.txt | xargs apt-get install -y --no-install-recommends \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages.txt \
 && ln -s libcrypto.so.3 "/usr/lib/$(uname -m)-linux-gnu/libcrypto.so" \
 && echo /usr/local/cuda/lib64 > /etc/ld.so.conf.d/cohort-cuda.conf && ldconfig
COPY --from=builder /opt/cohort/bin/cohort-agent /opt/cohort/bin/
COPY --from=builder /opt/cohort/lib/cohort/libcohort_civetweb_ssl_compat.so /opt/cohort/lib/cohort/
ENV NVIDIA_VISIBLE_DEVICES=all NVIDIA_DRIVER_CAPABILITIES=compute,utility
USER 65532:65532
# Prometheus metrics (--metrics-listen) and the plaintext grpc.health.v1 port (--health-listen).
# Gloo and NCCL connect peers on ports they pick: run the agents with host networking or a pod
# network that lets peers reach each other.
EXPOSE 9464 9466
ENTRYPOINT ["/opt/cohort/bin/cohort-agent"]
