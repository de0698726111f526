# Dockerfile - one image with the four PlayØMQ programs.
#
#   docker build -t playzmq .          (docker compose up --build does this)
#   docker run --rm playzmq playzmq-worker --broker HOST
#
# Stage 1 builds exactly as CI does: the same package list through the same
# script (tools/deps.sh tools/packages-build.txt), the same meson commands
# (tools/build.sh). Whatever breaks this build breaks CI first.
# Stage 2 holds only the runtime libraries and the four executables, and runs
# them as an unprivileged user.

FROM debian:bookworm-slim AS build
WORKDIR /src
# The package layer depends only on these two files, so changing the code
# does not reinstall the compiler.
COPY tools/deps.sh tools/packages-build.txt tools/
RUN tools/deps.sh tools/packages-build.txt
COPY . .
RUN tools/build.sh

FROM debian:bookworm-slim
# libczmq4 and libzmq5 are what the executables link (with what they pull in).
RUN apt-get update \
 && apt-get install -y --no-install-recommends libczmq4 libzmq5 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --user-group --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin playzmq
COPY --from=build /src/build/broker/playzmq-broker /src/build/worker/playzmq-worker \
     /src/build/source/playzmq-source /src/build/sink/playzmq-sink /usr/local/bin/
USER playzmq
# source, publish, dispatch, results: the broker binds tcp://*:PORT for each.
EXPOSE 5555 5556 5557 5558
# Exec form, no shell and no init: the program is PID 1 and gets docker
# stop's SIGTERM itself. Each installs a SIGINT/SIGTERM handler (the kernel
# drops signals to a PID 1 that has none), drains, and exits 0; none starts
# child processes, so there are no zombies for an init to reap.
# Pick the program with the command: `docker run playzmq playzmq-sink ...`.
CMD ["playzmq-broker"]
