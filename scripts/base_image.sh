#!/usr/bin/env bash
# Make the image's base from Debian's archive alone, for machines that can pull no registry image:
# debootstrap a minimal Debian bookworm, add Python 3.11 with venv and this host's CA certificates (so pip and apt
# work behind a TLS-inspecting proxy), and `docker import` it.
# Usage: scripts/base_image.sh IMAGE_TAG   (make base-image: animals-base:bookworm; needs root, debootstrap, docker)
set -euo pipefail
tag=${1:?usage: scripts/base_image.sh IMAGE_TAG (the Dockerfile names animals-base:bookworm)}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

fail() { echo "error: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || fail "debootstrap needs root; run: sudo $0 $tag"
command -v docker >/dev/null || fail "docker is not installed (README: Deployment)"
command -v debootstrap >/dev/null || fail "debootstrap is not installed; install it with: apt-get install debootstrap"
if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "Base image $tag exists already (docker rmi $tag to make it again)"
  exit 0
fi

root=$(mktemp -d /tmp/animals-base.XXXXXX)
trap 'rm -rf "$root"' EXIT
echo "Bootstrapping Debian bookworm into $root from $mirror (a few minutes)"
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$root" "$mirror" 2>&1 |
  grep -E '^(E|W): |Base system' || true
[ -x "$root/usr/bin/python3" ] || fail "debootstrap did not install python3 (see above)"
echo "Adding this host's CA certificates"
if [ -d /usr/local/share/ca-certificates ]; then
  cp -r /usr/local/share/ca-certificates/. "$root/usr/local/share/ca-certificates/"
fi
chroot "$root" update-ca-certificates >/dev/null 2>&1
echo "deb $mirror bookworm main" >"$root/etc/apt/sources.list"
echo "deb $mirror bookworm-updates main" >>"$root/etc/apt/sources.list"
echo "deb http://deb.debian.org/debian-security bookworm-security main" >>"$root/etc/apt/sources.list"
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/tmp/*
echo "Importing it as $tag"
tar -C "$root" -c . | docker import \
  --change 'ENV LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["/bin/bash"]' - "$tag" >/dev/null
echo "Base image $tag: $(docker image inspect --format '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}')"
