#!/usr/bin/env bash
# Make sure Debian's PostgreSQL server programs are installed: the corrections tests run against a real PostgreSQL
# (started by the tests themselves in a temporary folder, on loopback) as well as SQLite. On a developer's machine
# that cannot install it those tests fail with the command to run; in CI (CI=true) this script fails at once.
set -u
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  exit 0
fi
echo "Installing Debian's postgresql for the corrections tests"
if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo -n"; fi
if $sudo apt-get install -y -qq postgresql >/dev/null 2>&1 || { $sudo apt-get update -qq >/dev/null 2>&1 && $sudo apt-get install -y -qq postgresql >/dev/null 2>&1; }; then
  echo "Installed $(ls -d /usr/lib/postgresql/*/bin | tail -1)"
elif [ "${CI:-}" = "true" ]; then
  echo "error: could not install postgresql (apt-get install postgresql), and CI=true needs the PostgreSQL tests" >&2
  exit 1
else
  echo "WARNING: could not install postgresql (apt-get install postgresql); the PostgreSQL corrections tests will fail"
fi
