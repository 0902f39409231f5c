#!/bin/bash
# Builds examples/hello with pybuild, hands it to Docker with `pybuild save | docker load`, and runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cp /bin/busybox examples/hello/busybox
.venv/bin/pybuild build -t pybuild-example/hello:latest examples/hello
.venv/bin/pybuild images pybuild-example/hello
.venv/bin/pybuild save -o /tmp/pybuild-hello.tar pybuild-example/hello:latest
docker load -i /tmp/pybuild-hello.tar
docker run --rm --network=none pybuild-example/hello:latest
