# syntax=docker/dockerfile:1
# Chorus on Bun (the default image; Dockerfile.deno runs the same code on Deno).
#   docker build -t chorus .
#   docker run --rm -p 8080:8080 -e CHORUS_APP_ID=... -e CHORUS_APP_KEY=... \
#     -e CHORUS_APP_SECRET=... -e REDIS_URL=redis://redis:6379 chorus
# test/deploy.test.ts checks that CMD is package.json's start command and that the Bun tag
# below is the Bun version package.json pins.

# Production dependencies, from the lockfile. They are plain JavaScript (hono, ioredis, valibot),
# so installing them with Node's npm is the same as with Bun's. `--omit=optional` leaves out
# TypeScript, an optional peer of valibot that nothing needs at run time.
FROM node:22-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --omit=optional --ignore-scripts --no-audit --no-fund

FROM oven/bun:1.4.5-slim
WORKDIR /app
ENV HOST=0.0.0.0 \
    PORT=8080
COPY --from=deps /app/node_modules ./node_modules
COPY package.json tsconfig.json ./
COPY adapters ./adapters
COPY src ./src
# The code stays owned by root: the server only reads it.
USER bun
EXPOSE 8080
# SIGTERM starts the graceful drain (CHORUS_DRAIN_MS); give `docker stop -t` more than that.
STOPSIGNAL SIGTERM
# Bun directly, not `npm start`: the signal reaches Chorus and its exit status is the container's.
CMD ["bun", "run", "src/bun.ts"]
