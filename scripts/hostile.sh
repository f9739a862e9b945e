#!/usr/bin/env bash
# The hostile sweep of issue 16: every case of tests/test_hostile.py (the slow ones included), one line per
# case with its result. Runs in a few minutes on 2 CPU cores. Disk-full cases mount a tmpfs and the
# permission cases run commands as `nobody`: both need root (as in CI); elsewhere they skip and say why.
#
#   bash scripts/hostile.sh            # uses .venv/bin/python when present
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
start=$(date +%s)
set +e
"$PYTHON" -m pytest tests/test_hostile.py -m "" -v -p no:cacheprovider -rs "$@" 2>&1 \
    | sed -n 's/^tests\/test_hostile.py::\(test_[a-z_]*\)\(\[\(.*\)\]\)\{0,1\} \([A-Z]*\).*/\4  \1 \3/p; /^SKIPPED/p; /^=.*\(passed\|failed\)/p'
status=${PIPESTATUS[0]}
set -e
echo "hostile sweep: $(( $(date +%s) - start )) s, pytest exit status ${status}"
exit "$status"
