# Multi-stage build: compile with the Rust toolchain, run on a slim Debian.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
ARG GIT_SHA=unknown
ENV GIT_SHA=${GIT_SHA}
RUN cargo build --release --locked && cp target/release/amani /amani

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl postgresql-client \
    && rm -rf /var/lib/apt/lists/* && useradd --system --home /var/lib/amani amani \
    && mkdir -p /var/lib/amani/data && chown -R amani /var/lib/amani
COPY --from=build /amani /usr/local/bin/amani
USER amani
WORKDIR /var/lib/amani
ENV HOST=0.0.0.0 PORT=8000
EXPOSE 8000
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/amani"]
CMD ["serve"]
