# syntax=docker/dockerfile:1
# kms-secret-guard image: Node.js 24 (the runtime the README documents), production
# dependencies only, non-root, read-only-root friendly. Build from the repository root:
#   docker build -t kms-secret-guard:$(node -p "require('./package.json').version") .
# CI has no Docker engine; scripts/check-package.sh and test/integration/package-*.test.ts
# check what this file relies on (paths, Node major, a production-only install that runs).
ARG NODE_IMAGE=node:24-bookworm-slim

# 1. Compile TypeScript with the full (dev) dependency set.
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
# --ignore-scripts: `prepare` would build before the sources are copied.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# 2. Production dependencies only, exactly as locked.
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

# 3. Runtime: compiled code + production node_modules, no npm cache, no sources.
FROM ${NODE_IMAGE} AS runtime
# The runtime user has no passwd entry; give libraries that look for ~ a writable place
# (an emptyDir in the Kubernetes manifests, which mount /tmp).
ENV NODE_ENV=production HOME=/tmp
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
# `kms-secret-guard` on PATH, for `kubectl exec … kms-secret-guard check` and the reencrypt Job.
RUN chmod 0755 /app/dist/cli/main.js \
 && ln -s /app/dist/cli/main.js /usr/local/bin/kms-secret-guard
# 65532: the conventional "nonroot" id; the manifests set the same runAsUser.
USER 65532:65532
EXPOSE 8443 8080
ENTRYPOINT ["node", "/app/dist/cli/main.js"]
CMD ["serve"]
