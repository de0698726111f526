#!/usr/bin/env bash
# docker-engine.sh - a Docker engine for the container tests (tests/test_deploy.py),
# and the debian:bookworm-slim base image where no registry can be reached.
#
#   tools/docker-engine.sh start        prints DOCKER_HOST=... for an engine that
#                                       answers: the one already running (used
#                                       as it is), or one of our own, started here
#   tools/docker-engine.sh stop         stops the engine `start` started (only that)
#   tools/docker-engine.sh base-image   makes sure debian:bookworm-slim exists:
#                                       pulled, or else made with debootstrap
#                                       (the root file system is cached)
#
# Our own engine: data-root $PLAYZMQ_CACHE/docker (kept between runs, so the
# image's layers are cached), socket, pid file and exec-root in $PLAYZMQ_RUN.
# It publishes a port that names no address on 127.0.0.1 (--ip; Swarm's
# host-mode ports still take every interface). Needs root, dockerd
# (Debian's docker.io) and iptables; debootstrap for the base image.
# Exit status: 0 done, 1 cannot (the reason on stderr, one line), 2 usage.
set -euo pipefail

CACHE=${PLAYZMQ_CACHE:-/var/cache/playzmq}
RUN=${PLAYZMQ_RUN:-/run/playzmq-docker}
SOCK=$RUN/docker.sock
PIDFILE=$RUN/docker.pid
BASE=debian:bookworm-slim

fail() { echo "docker-engine: $*" >&2; exit 1; }

answers() {                     # answers [DOCKER_HOST]: does that engine answer?
  if [ -n "${1:-}" ]; then
    DOCKER_HOST=$1 timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1
  else
    timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1
  fi
}

ours_alive() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

start() {
  command -v docker >/dev/null || fail "no docker client (install docker.io)"
  # Ours, left running by a run that was cut short: use it, stop it later.
  if answers "unix://$SOCK"; then
    echo "DOCKER_HOST=unix://$SOCK"
    echo "docker-engine: using our dockerd left running (pid $(cat "$PIDFILE" 2>/dev/null))" >&2
    return 0
  fi
  # An engine that already runs (DOCKER_HOST, or the default socket) is used as is.
  if answers; then
    echo "DOCKER_HOST=${DOCKER_HOST:-unix:///var/run/docker.sock}"
    echo "docker-engine: using the engine already running" >&2
    return 0
  fi
  [ "$(id -u)" -eq 0 ] || fail "not root: cannot start dockerd"
  ! ours_alive || fail "our dockerd (pid $(cat "$PIDFILE")) runs but does not answer on $SOCK"
  command -v dockerd >/dev/null || fail "no dockerd (install docker.io)"
  command -v iptables >/dev/null || fail "no iptables (dockerd needs it)"
  mkdir -p "$RUN" "$CACHE/docker"
  rm -f "$SOCK" "$PIDFILE"
  # dockerd sets the FORWARD policy to DROP: `stop` puts back what was there.
  iptables -S FORWARD 2>/dev/null | awk '$1 == "-P" { print $3 }' >"$RUN/forward-policy" || true
  # setsid: the engine must not get the terminal's (or meson's) signals.
  setsid dockerd --data-root "$CACHE/docker" --exec-root "$RUN/exec" \
    --host "unix://$SOCK" --pidfile "$PIDFILE" --ip 127.0.0.1 \
    </dev/null >"$RUN/dockerd.log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 120); do                        # 30 s
    if answers "unix://$SOCK"; then
      echo "DOCKER_HOST=unix://$SOCK"
      echo "docker-engine: started dockerd (pid $pid, data-root $CACHE/docker)" >&2
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.25
  done
  kill -TERM "$pid" 2>/dev/null || true
  fail "dockerd did not start: $(grep -iE 'level=(fatal|error)' "$RUN/dockerd.log" | tail -1)"
}

stop() {
  ours_alive || return 0
  local pid
  pid=$(cat "$PIDFILE")
  # A swarm this engine joined would come back with it: leave it first.
  DOCKER_HOST="unix://$SOCK" timeout 30 docker swarm leave --force >/dev/null 2>&1 || true
  kill -TERM "$pid"
  for _ in $(seq 1 120); do                        # 30 s: dockerd stops its containers
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.25
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
    echo "docker-engine: dockerd (pid $pid) killed after 30 s" >&2
  else
    echo "docker-engine: stopped dockerd (pid $pid)" >&2
  fi
  # What it leaves on the host: its bridges, and the FORWARD policy.
  for link in docker0 docker_gwbridge; do
    ip link delete "$link" 2>/dev/null || true
  done
  local policy
  policy=$(cat "$RUN/forward-policy" 2>/dev/null || true)
  [ -z "$policy" ] || iptables -P FORWARD "$policy" 2>/dev/null || true
}

base_image() {
  docker image inspect "$BASE" >/dev/null 2>&1 && return 0
  if timeout 30 docker pull -q "$BASE" >/dev/null 2>&1; then
    echo "docker-engine: pulled $BASE" >&2
    return 0
  fi
  local tarball=$CACHE/bookworm-minbase.tar
  if [ ! -s "$tarball" ]; then
    command -v debootstrap >/dev/null || fail "cannot pull $BASE and no debootstrap"
    [ "$(id -u)" -eq 0 ] || fail "cannot pull $BASE and not root for debootstrap"
    # The mirror apt uses here (the registry is not reachable, the archive is).
    local mirror
    mirror=$(grep -hsoE '^(URIs:|deb) +https?://[^ ]+/debian/?( |$)' \
               /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list \
               /etc/apt/sources.list 2>/dev/null | head -1 | awk '{print $2}' || true)
    mirror=${mirror:-http://deb.debian.org/debian}
    local rootfs=$CACHE/rootfs.tmp
    rm -rf "$rootfs"
    echo "docker-engine: cannot pull $BASE: making it with debootstrap from $mirror (~1 min)" >&2
    debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$CACHE/debootstrap.log" 2>&1 \
      || fail "debootstrap failed: $(tail -1 "$CACHE/debootstrap.log")"
    # As the slim image: no apt lists, no caches, no docs or man pages.
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin \
           "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/usr/share/doc/* \
           "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/*
    tar -C "$rootfs" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf "$rootfs"
  fi
  docker import -c 'CMD ["bash"]' "$tarball" "$BASE" >/dev/null \
    || fail "docker import of $tarball failed"
  echo "docker-engine: made $BASE from $tarball" >&2
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  base-image) base_image ;;
  *) echo "usage: tools/docker-engine.sh start | stop | base-image" >&2; exit 2 ;;
esac
