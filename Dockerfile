# syntax=docker/dockerfile:1
# Multi-stage build: compile in the Rust image, run as a non-root user with data in /data.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin rumgate \
 && strip target/release/rumgate

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates tini \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin rumgate \
 && mkdir -p /data && chown rumgate:rumgate /data && chmod 0700 /data
COPY --from=build /src/target/release/rumgate /usr/local/bin/rumgate
COPY config/example.toml /etc/rumgate/example.toml
USER rumgate
VOLUME ["/data"]
ENV RUMGATE_DATA_DIR=/data \
    RUMGATE_API_LISTEN=0.0.0.0:8002
# 8002: REST API (put TLS in front of it); 7002: peer-to-peer (libp2p over TCP).
EXPOSE 8002 7002
HEALTHCHECK --interval=30s --timeout=3s CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8002"]
ENTRYPOINT ["/usr/bin/tini", "--", "rumgate"]
CMD ["run"]
