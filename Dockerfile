# syntax=docker/dockerfile:1
# Gatehouse container image: build with dev dependencies (Prisma client
# generation, type-check), then a slim runtime with production dependencies
# only, running as the unprivileged `node` user.

FROM node:24-bookworm-slim AS build
WORKDIR /app
# Install first (cached while only sources change). postinstall generates the
# Prisma client into src/generated from prisma/schema.prisma.
COPY package.json package-lock.json ./
COPY scripts ./scripts
COPY prisma ./prisma
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY bin ./bin
COPY src ./src
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

FROM node:24-bookworm-slim AS runtime
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=3000 \
    GATEHOUSE_DATA_DIR=/app/data
WORKDIR /app
COPY --from=build --chown=root:root /app/package.json ./
COPY --from=build --chown=root:root /app/node_modules ./node_modules
COPY --from=build --chown=root:root /app/bin ./bin
COPY --from=build --chown=root:root /app/src ./src
COPY --from=build --chown=root:root /app/prisma/migrations ./prisma/migrations
RUN mkdir -p /app/data && chown node:node /app/data
USER node
EXPOSE 3000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# `serve` applies pending migrations under an advisory lock before listening.
# --max-semi-space-size=2: short garbage-collection pauses (src/cli/node-flags.ts).
ENTRYPOINT ["node", "--max-semi-space-size=2", "bin/gatehouse.js"]
CMD ["serve"]
