#!/usr/bin/env bash
# Debian packages the end-to-end tests and benchmarks drive: real registry clients
# (skopeo, podman, buildah, docker CLI + daemon, containerd's ctr), CNCF Distribution as a yardstick,
# Chromium and npm for the dashboard's browser tests, and HTTP load generators for `make bench`'s requests-per-second figures: wrk (GET) and
# ApacheBench from apache2-utils (HEAD, which wrk 4.1 cannot measure).
# Idempotent: installs only what is missing.
set -euo pipefail

need=()
command -v skopeo >/dev/null 2>&1 || need+=(skopeo)
command -v podman >/dev/null 2>&1 || need+=(podman)
command -v buildah >/dev/null 2>&1 || need+=(buildah)
[ -x /usr/bin/docker ] && [ -x /usr/sbin/dockerd ] || need+=(docker.io)
command -v ctr >/dev/null 2>&1 || need+=(containerd)
[ -x /usr/bin/docker-registry ] || need+=(docker-registry)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v ab >/dev/null 2>&1 || need+=(apache2-utils)
# The dashboard's browser tests: Debian's Chromium (driven by Playwright) and npm (axe-core).
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v npm >/dev/null 2>&1 || need+=(npm)

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
    echo "install-system-deps: need root (or sudo) to install: ${need[*]}" >&2; exit 1
  fi
else
  SUDO=
fi
echo "install-system-deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
