#!/bin/bash
# Installs what pybuild and its tests need on a fresh Debian machine (run as root): Debian packages, a virtualenv
# in .venv with pybuild and its Python dependencies, and a running Docker daemon for the comparison tests.
set -euo pipefail
cd "$(dirname "$0")/.."
# Debian's own interpreter, which its python3-venv package belongs to (not whatever python3 a PATH puts first).
PYTHON=/usr/bin/python3
[ -x "$PYTHON" ] || PYTHON=python3
APT_PACKAGES="busybox-static docker.io buildah skopeo umoci docker-registry graphviz apache2-utils openssl slirp4netns libseccomp2 iproute2 chromium openssh-client debootstrap"
"$PYTHON" -c 'import ensurepip, venv' 2>/dev/null || APT_PACKAGES="$APT_PACKAGES python3-venv"
missing=""
for package in $APT_PACKAGES; do
  dpkg -s "$package" >/dev/null 2>&1 || missing="$missing $package"
done
if [ -n "$missing" ]; then
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# compat: the checkout goes on sys.path through a .pth line; the default editable mode's import hook costs every
# pybuild command ~6 ms at start-up.
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test]" --config-settings editable_mode=compat
.venv/bin/python -m compileall -q buildkit_py  # byte-compiled now, so no run pays for it even where bytecode writing is off
if ! docker info >/dev/null 2>&1 && command -v dockerd >/dev/null; then
  (dockerd --iptables=false --bridge=none >/tmp/pybuild-dockerd.log 2>&1 &)
  for _ in $(seq 1 30); do docker info >/dev/null 2>&1 && break; sleep 1; done
fi
