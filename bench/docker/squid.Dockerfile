# Debian's Squid in a container, for bench/run's docker-nat and docker-routed platforms
# (bench/run --docker-images dockerfile). BASE_IMAGE is a Debian 12 image; bench/run makes
# one from Debian's repositories with mmdebstrap and imports it. bench/run mounts the
# generated squid.conf and passes -f; Squid starts as root and runs as proxy (uid 13).
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends squid \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
EXPOSE 3128
ENTRYPOINT ["/usr/sbin/squid", "-N"]
