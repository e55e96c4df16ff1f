# The service on Node 24 (the image's own Node runs it: `--omit=dev` leaves out the `node`
# devDependency along with the test tools). It runs src/*.ts directly; nothing is built. Everything it
# reads at run time is under src/ (the case-folding table is src/domain/CaseFoldingTable.ts).
FROM node:24-slim
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: no dependency needs an install script at run time.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY src ./src
# Without DATABASE_URL the embedded PGlite keeps its data in DATA_DIR: writable by the service's user
# (mount a volume there to keep it beyond the container).
RUN mkdir -p /app/data && chown node:node /app/data
ENV NODE_ENV=production PORT=8080 DATA_DIR=/app/data
# The unprivileged user the node images ship; it owns nothing but /app/data.
USER node
EXPOSE 8080
# No curl in slim images: Node's own fetch. /health is 200 once start-up recovery is done and while
# the database answers, 503 otherwise.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch(`http://127.0.0.1:${process.env.PORT}/health`).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
CMD ["node", "src/main.ts"]
