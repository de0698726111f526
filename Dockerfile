# Dockerfile - one image with the PlayØMQ programs.
#
#   docker build -t playzmq .          (docker compose build does this)
#   docker run --rm playzmq playzmq-worker --broker HOST
#
# Stage 1 builds exactly as CI does: the same package list through the same
# script (tools/deps.sh tools/packages-build.txt), the same meson commands
# (tools/build.sh). Whatever breaks this build breaks CI first.
# Stage 2 holds only the runtime libraries and the six executables, and runs
# them as an unprivileged user: it adds about 16 MB to debian:bookworm-slim
# (tests/test_deploy.py prints the figure and fails above 25 MB).

FROM debian:bookworm-slim AS build
WORKDIR /src
# The package layer depends only on these two files, so changing the code
# does not reinstall the compiler.
COPY tools/deps.sh tools/packages-build.txt tools/
RUN tools/deps.sh tools/packages-build.txt
COPY . .
RUN tools/build.sh

FROM debian:bookworm-slim
# libczmq4, libzmq5 and libprimesieve11 (workers; the broker links worker/sieve.c for its audit) are what the executables link (with what they pull in:
# libsodium, OpenPGM, NORM, Kerberos' GSSAPI). Nothing else: no shell tools
# beyond the base image's, no apt lists, no logs of the install.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libczmq4 libzmq5 libprimesieve11 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log \
           /var/cache/debconf/*-old /var/lib/dpkg/*-old \
 && useradd --system --user-group --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin playzmq \
 && install -d -o playzmq -g playzmq -m 700 /var/lib/playzmq
# Keys (docker-compose.yml): each service mounts its keys' volume on
# /etc/playzmq, the one-shot `keys` service all four on /keys/NAME. A new
# volume takes the owner of the directory it is mounted on, so these are the
# unprivileged user's, whichever container mounts a volume first.
RUN install -d -o playzmq -g playzmq -m 700 /etc/playzmq \
      /keys/broker /keys/worker /keys/source /keys/sink
COPY --from=build /src/build/broker/playzmq-broker /src/build/worker/playzmq-worker \
     /src/build/source/playzmq-source /src/build/sink/playzmq-sink \
     /src/build/top/playzmq-top /src/build/keygen/playzmq-keygen /usr/local/bin/

# OCI annotations. The version is meson.build's (tests/test_deploy.py checks
# that they agree); pass the repository's address with --build-arg SOURCE_URL.
ARG VERSION=1.0.0
ARG SOURCE_URL=https://example.invalid/playzmq
LABEL org.opencontainers.image.title="PlayØMQ" \
      org.opencontainers.image.description="Distributed prime checker on ZeroMQ: broker, worker, source, sink, top, keygen" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.licenses="MPL-2.0"

USER playzmq
# The broker's journal (--journal, PLAYZMQ_JOURNAL). Compose mounts a named
# volume here; a new volume takes this directory's owner, so the
# unprivileged user can write it. Not a VOLUME: workers need none.
WORKDIR /var/lib/playzmq
# source, publish, dispatch, results, history: the broker binds tcp://*:PORT
# for each.
EXPOSE 5555 5556 5557 5558 5559
# Asks the broker for its stats (a real request on its history endpoint,
# answered by its thread only while the broker's loop turns: not an open
# port): healthy if it answered within 2 s. In a worker, source or sink
# container it asks that container's broker (PLAYZMQ_BROKER); compose turns
# the check off there. Exec form of sh only to read the variable.
HEALTHCHECK --interval=5s --timeout=3s --start-period=5s --retries=3 \
  CMD ["/bin/sh", "-c", "exec playzmq-top --once --timeout 2000 --broker \"${PLAYZMQ_BROKER:-127.0.0.1}\" >/dev/null"]
# Exec form, no shell and no init: the program is PID 1 and gets docker
# stop's SIGTERM itself. Each installs a SIGINT/SIGTERM handler (the kernel
# drops signals to a PID 1 that has none), drains, and exits 0; none starts
# child processes, so there are no zombies for an init to reap.
# Pick the program with the command: `docker run playzmq playzmq-sink ...`.
CMD ["playzmq-broker"]
