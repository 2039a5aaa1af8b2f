# A tiny origin web server for docker/compose.yaml: busybox httpd serving a
# few static files on port 8080, from the same Debian base as proxyd.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends busybox \
 && apt-get clean && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /srv/www \
 && echo "hello from the origin" >/srv/www/index.html \
 && head -c 100000 /dev/zero | tr '\0' x >/srv/www/100k.txt
USER nobody
EXPOSE 8080
CMD ["busybox", "httpd", "-f", "-v", "-p", "8080", "-h", "/srv/www"]
