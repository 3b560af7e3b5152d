#!/usr/bin/env bash
# run_check.sh SHARED_DIR PLUGIN OPTIONS: the conformance suite's check.sh over all its tests.
set -u
shared=$1 plugin=$2 opts=$3
if [ ! -x "$shared/conformance/check.sh" ] && [ ! -f "$shared/conformance/check.sh" ]; then
    echo "skipped: no conformance suite at $shared/conformance (set -DEBPFRT_SHARED_DIR)"
    exit 77
fi
if ! command -v python3 >/dev/null 2>&1; then
    echo "skipped: check.sh needs python3"
    exit 77
fi
exec bash "$shared/conformance/check.sh" --jobs 2 --plugin-options "$opts" "$plugin" "$shared/conformance/tests"
