# syntax=docker/dockerfile:1
#
# Switchboard container image: built on Debian 12, run on bookworm-slim as an
# unprivileged user.
#
#   docker build -t switchboard .
#   docker run --rm -p 127.0.0.1:8080:8080 \
#       -e DATABASE_URL='host=db port=5432 dbname=switchboard user=switchboard password=... gssencmode=disable' \
#       -e SB_JWT_SECRET="$(openssl rand -hex 32)" \
#       -e SB_ADMIN_PASSWORD='first super-admin password' \
#       switchboard
#
# Kore speaks plain HTTP: terminate TLS in front of it (conf/nginx-tls.conf).
# Configuration is the environment: DATABASE_URL and SB_JWT_SECRET are required
# (no defaults baked into the image), PORT (8080), SB_BIND (0.0.0.0), SB_CONFIG
# and SB_ADMIN_PASSWORD are optional; see scripts/docker-entrypoint.sh.
# The build context should exclude var/ (the private PostgreSQL cluster and the
# development secrets), build/, node_modules/ and .git: list them in a .dockerignore.

ARG DEBIAN_RELEASE=bookworm

# ---------------------------------------------------------------------------
FROM debian:${DEBIAN_RELEASE} AS builder

ARG DEBIAN_FRONTEND=noninteractive
# kore ships the Kore source under /usr/share/kore, from which `make build` builds
# the curl-enabled build/kore.  libphonenumber-dev (the host's phone-number
# helper, src/phone.cc) brings protobuf, ICU, abseil and Boost headers; g++
# comes with build-essential.  `make build` also links the unit tests (cmocka)
# and builds the console assets (scripts/assets.sh, npm).
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
	kore \
	build-essential \
	pkg-config \
	ca-certificates \
	libpq-dev \
	libcurl4-openssl-dev \
	libssl-dev \
	libjwt-dev \
	libjansson-dev \
	libmagic-dev \
	libvips-dev \
	libargon2-dev \
	libphonenumber-dev \
	libcmocka-dev \
	nodejs \
	npm \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . .
# Start from a clean tree even if the context carried a host build or var/.
RUN rm -rf build var node_modules \
 && make build

# Stage exactly what the runtime image ships, in the repository's layout, so that
# relative paths in kore.conf (load ./build/switchboard.so) and conf/ keep working.
# (A COPY with plugins/*/migrations would flatten the plugin directories;
# plugins/*/templates are the notification mails; plugins/*/console are the
# web-console panels' files, read from the plugin's source dir at start.)
RUN set -eu; \
    mkdir -p /out/build /out/scripts; \
    cp -a build/kore build/switchboard.so /out/build/; \
    if [ -d build/plugins ]; then cp -a build/plugins /out/build/; fi; \
    cp -a assets migrations conf kore.conf /out/; \
    for d in plugins/*/migrations plugins/*/templates plugins/*/console; do \
	if [ -d "$d" ]; then cp -a --parents "$d" /out/; fi; \
    done; \
    cp -a scripts/docker-entrypoint.sh scripts/kore-conf.sh /out/scripts/

# ---------------------------------------------------------------------------
FROM debian:${DEBIAN_RELEASE}-slim AS runtime

ARG DEBIAN_FRONTEND=noninteractive
# Runtime libraries only; curl is for the HEALTHCHECK.  libphonenumber8 pulls
# in libprotobuf32, libicu72 and libabsl20220623.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
	libpq5 \
	libcurl4 \
	libssl3 \
	libjwt0 \
	libjansson4 \
	libmagic1 \
	libvips42 \
	libargon2-1 \
	libphonenumber8 \
	ca-certificates \
	curl \
 && rm -rf /var/lib/apt/lists/*

# A fixed numeric uid/gid so that `USER` below satisfies Kubernetes'
# runAsNonRoot check and volume ownership is predictable.
RUN groupadd --system --gid 10001 switchboard \
 && useradd --system --uid 10001 --gid switchboard --home-dir /app \
	--no-create-home --shell /usr/sbin/nologin switchboard

WORKDIR /app
# The application stays root-owned and read-only to the service user; it may
# write only to var/ (storage) and /run/switchboard (rendered kore.conf, pid file).
COPY --from=builder /out/ /app/
RUN set -e; \
    install -d -o switchboard -g switchboard -m 0750 /app/var /run/switchboard; \
    chmod 0755 /app/scripts/docker-entrypoint.sh /app/scripts/kore-conf.sh; \
    for f in /app/build/kore /app/build/switchboard.so /app/build/plugins/*.so; do \
	[ -e "$f" ] || continue; \
	if ldd "$f" | grep -q 'not found'; then \
		echo "missing runtime library for $f:" >&2; ldd "$f" >&2; exit 1; \
	fi; \
    done

ENV PORT=8080 \
    SB_BIND=0.0.0.0 \
    SB_RUNTIME_DIR=/run/switchboard

USER 10001:10001
EXPOSE 8080

HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
	CMD ["/app/scripts/docker-entrypoint.sh", "healthcheck"]

ENTRYPOINT ["/app/scripts/docker-entrypoint.sh"]
