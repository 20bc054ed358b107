# The tcp-chimney lab image: the `chimney` command with its native TAP addon. Both services of
# docker-compose.yml run it (`chimney lab peer`, `chimney lab stack`); see native-notes/containers.md.
FROM node:20-bookworm-slim

# g++/make/python3: node-gyp builds the TAP addon and raw-socket during `npm ci`.
# iproute2, tcpdump: what `chimney lab stack` runs (TAP address/route, the wire capture).
RUN apt-get update \
 && apt-get install -y --no-install-recommends g++ make python3 iproute2 tcpdump \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/tcp-chimney
# Everything first: `npm ci` builds the addon (binding.gyp) and the TypeScript (prepare), which
# both need the sources.
COPY . .
RUN npm ci --no-audit --no-fund \
 && chmod +x dist/src/cli/main.js \
 && ln -s /opt/tcp-chimney/dist/src/cli/main.js /usr/local/bin/chimney \
 && chimney --version

ENTRYPOINT ["chimney"]
CMD ["--help"]
