# syntax=docker/dockerfile:1
#
# The camunda-sandbox worker image.
#
#   docker build -t camunda-sandbox .
#   docker run --rm -e CAMUNDA_URL=http://engine:8080/engine-rest -p 9464:9464 camunda-sandbox
#   docker run --rm -v "$PWD/myscript.js:/tmp/s.js:ro" camunda-sandbox run /tmp/s.js
#
# Base image: the official Node.js image at the exact release of .node-version
# (isolated-vm ships a prebuilt add-on for Node 24 on glibc, for amd64 and
# arm64, so the Debian slim variant needs no compiler). The tag is pinned to
# x.y.z; add the digest as well where the registry can be reached.
# To refresh (a new Node release, or the image's Debian security updates):
#   1. write the new version into .node-version and into the FROM line below;
#   2. pin the digest of the multi-arch index:
#        docker buildx imagetools inspect node:<version>-bookworm-slim   # "Digest:" line
#      (or `crane digest node:<version>-bookworm-slim`), and write
#        FROM node:<version>-bookworm-slim@sha256:<digest> AS base
#   3. rebuild and run the ops test: npx vitest run test/ops
FROM node:24.22.3-bookworm-slim AS base
WORKDIR /app

# --- build: compile TypeScript to dist/ --------------------------------------
FROM base AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY scripts/build.mjs scripts/build.mjs
COPY src/ src/
# tsc -p tsconfig.build.json, then the files tsc does not emit
# (src/sandbox/prelude.isolate.js) copied next to their modules.
RUN node scripts/build.mjs

# --- runtime ----------------------------------------------------------------
FROM base AS runtime
WORKDIR /app
ENV NODE_ENV=production \
    SANDBOX_POLICIES=/etc/camunda-sandbox/policies \
    SANDBOX_SCRIPTS=/srv/camunda-sandbox/scripts \
    METRICS_PORT=9464

# Production dependencies only. The last command loads the native add-on
# once, so that an image whose isolated-vm cannot load fails to build.
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund \
 && npm cache clean --force \
 && node --no-node-snapshot -e "new (require('isolated-vm').Isolate)({ memoryLimit: 8 }).dispose()"

COPY --from=build /app/dist/ dist/

# The shipped policies are the defaults; mount a folder (or a Kubernetes
# ConfigMap) over either path to replace them. Everything stays owned by
# root and read-only to the worker's user.
COPY sandbox-policies/ /etc/camunda-sandbox/policies/
RUN mkdir -p /srv/camunda-sandbox/scripts \
 && chmod -R a+rX /etc/camunda-sandbox /srv/camunda-sandbox \
 && groupadd --system --gid 10001 sandbox \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin sandbox
VOLUME ["/etc/camunda-sandbox/policies", "/srv/camunda-sandbox/scripts"]

USER 10001:10001

# /metrics, /healthz, /readyz
EXPOSE 9464

# Liveness only: /readyz also needs the engine, which is not the container's
# health. Node's own fetch, since the slim image has no curl or wget.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.METRICS_PORT || 9464) + '/healthz', { signal: AbortSignal.timeout(4000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

# The worker drains on SIGTERM: tasks in flight get SHUTDOWN_GRACE_MS
# (default 25 s) to finish, the rest are unlocked, and the pending long poll
# (POLL_TIMEOUT_MS, 10 s) is waited for. Give `docker stop` more than their
# sum: docker stop -t 45 (Kubernetes: terminationGracePeriodSeconds, see ops/).
# The worker process loads no isolate; the executors it forks (and `run`'s)
# get --no-node-snapshot from the worker itself.
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "dist/cli/main.js"]
CMD ["worker"]
