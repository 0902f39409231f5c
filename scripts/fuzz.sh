#!/bin/bash
# The property-based fuzz tests (tests/test_fuzz_*.py) with many random examples instead of the suite's small fixed
# set. PYBUILD_FUZZ_EXAMPLES sets how many per property (default 20000); failing examples are kept in .hypothesis/
# and tried first on the next run. Extra arguments go to pytest, e.g. `scripts/fuzz.sh -k tar -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m pytest -q -p no:cacheprovider --hypothesis-profile=fuzz --hypothesis-show-statistics \
  -W ignore::hypothesis.errors.HypothesisWarning tests/test_fuzz_*.py "$@"
