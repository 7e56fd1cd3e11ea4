# cohort-coordinator (with cohortctl) on Debian 12 slim. From the repository root:
#   docker build -f deploy/docker/coordinator.Dockerfile -t cohort-coordinator .
# See deploy/docker/README.md. tests/docker/docker_files_test.py (make test, label docker) checks
# this file against the build tree: the builder runs only what CI runs, every COPY --from=builder
# is something `make install` produces, the package list matches ldd.

# --- Build: what CI (.ci/run) runs, then `make install` ---------------------------------------
FROM debian:12 AS builder
WORKDIR /src
COPY . .
RUN deploy/install-deps.sh
RUN make install PREFIX=/opt/cohort

# --- Runtime: only the shared libraries the binaries link ---------------------------------------
FROM debian:12-slim
COPY deploy/docker/coordinator-runtime-packages.txt /tmp/runtime-packages.txt
# civetweb (HTTPS metrics) dlopens the unversioned libcrypto.so, which only libssl-dev ships: the
# link is made here instead of installing libssl-dev (libssl.so is answered by the shim).
RUN apt-get update \
 && sed 's/#.*//' /tmp/runtime-packages.txt | xargs apt-get install -y --no-install-recommends \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages.txt \
 && ln -s libcrypto.so.3 "/usr/lib/$(uname -m)-linux-gnu/libcrypto.so"
COPY --from=builder /opt/cohort/bin/cohort-coordinator /opt/cohort/bin/cohortctl /opt/cohort/bin/
COPY --from=builder /opt/cohort/lib/cohort/libcohort_civetweb_ssl_compat.so /opt/cohort/lib/cohort/
USER 65532:65532
# gRPC (TLS or --insecure), the plaintext grpc.health.v1 port, Prometheus metrics.
EXPOSE 50051 50052 9464
ENTRYPOINT ["/opt/cohort/bin/cohort-coordinator"]
# The transport is not chosen here: set COHORT_TLS_CERT/KEY/CA (docs/security.md) or pass
# --insecure with these flags.
CMD ["--listen", "0.0.0.0:50051", "--health-listen", "0.0.0.0:50052", "--metrics-listen", "0.0.0.0:9464"]
