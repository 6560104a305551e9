#!/usr/bin/env bash
# Make sure a Docker engine that can build the image runs here, for the container tests: Docker 23+ with buildx and
# compose v2, taken from Debian's next release (trixie) when missing (bookworm's own docker.io 20.10 cannot build the
# Dockerfile), dockerd started when it is not running, and debootstrap for the base image (`make image` makes it).
# On a developer's machine what cannot be set up only skips the container tests, loudly; in CI (CI=true) it fails.
set -u
cd "$(dirname "$0")/.."
if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo -n"; fi

give_up() {
  if [ "${CI:-}" = "true" ]; then
    echo "error: $* (CI=true runs the container tests)" >&2
    exit 1
  fi
  echo "WARNING: $*; the container tests will be skipped"
  exit 0
}

engine_major() { docker version --format '{{.Server.Version}}' 2>/dev/null | cut -d. -f1; }

install_docker() {
  echo "Installing Docker 26 with buildx and compose v2 from Debian trixie (bookworm's docker.io is too old)"
  sources=/etc/apt/sources.list.d/debian-trixie.sources
  if [ ! -f "$sources" ]; then
    printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: trixie\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' |
      $sudo tee "$sources" >/dev/null
    # Only what is asked for by name comes from trixie; everything else stays bookworm's.
    printf 'Package: *\nPin: release n=trixie\nPin-Priority: 100\n' | $sudo tee /etc/apt/preferences.d/debian-trixie-low >/dev/null
  fi
  $sudo apt-get update -qq >/dev/null 2>&1 &&
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq -t trixie docker.io docker-buildx docker-compose containerd >/dev/null 2>&1
}

if ! command -v dockerd >/dev/null 2>&1 || ! docker buildx version >/dev/null 2>&1 || ! docker compose version >/dev/null 2>&1; then
  install_docker || give_up "could not install Docker (apt-get install -t trixie docker.io docker-buildx docker-compose)"
fi
if ! docker info >/dev/null 2>&1; then
  echo "Starting dockerd (log in /tmp/dockerd.log)"
  $sudo sh -c 'setsid dockerd >/tmp/dockerd.log 2>&1 < /dev/null &'
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || give_up "dockerd did not start (see /tmp/dockerd.log)"
fi
major=$(engine_major)
[ "${major:-0}" -ge 23 ] || give_up "Docker $(docker version --format '{{.Server.Version}}') is older than 23"
if ! command -v debootstrap >/dev/null 2>&1; then
  $sudo apt-get install -y -qq debootstrap >/dev/null 2>&1 || give_up "could not install debootstrap"
fi
