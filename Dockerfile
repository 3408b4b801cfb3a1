# Build: docker build -t ficus .
# Run:   docker run -p 8080:8080 -v "$PWD/routes.toml:/etc/ficus/routes.toml:ro" ficus

FROM rust:1-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin ficus

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --user-group --home-dir /var/lib/ficus --create-home ficus
COPY --from=build /src/target/release/ficus /usr/local/bin/ficus
COPY routes.toml /etc/ficus/routes.toml
# data_dir = "./ficus-data" resolves here, in a directory the ficus user owns.
WORKDIR /var/lib/ficus
USER ficus
# 8080: the proxy; 9090: the admin address in the shipped routes.toml.
EXPOSE 8080 9090
# slim has no curl: check that the proxy listener accepts connections, with bash's /dev/tcp.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["ficus", "run", "--config", "/etc/ficus/routes.toml"]
