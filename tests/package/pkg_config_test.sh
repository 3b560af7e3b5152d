#!/usr/bin/env bash
# pkg_config_test.sh PREFIX SOURCE WORKDIR: builds SOURCE with the flags of the installed ebpfrt.pc.
set -euo pipefail
prefix=$1 src=$2 work=$3
mkdir -p "$work"
pc_dir=$(dirname "$(find "$prefix" -name ebpfrt.pc | head -n 1)")
export PKG_CONFIG_PATH="$pc_dir"
# shellcheck disable=SC2046
c++ -o "$work/quickstart" "$src" $(pkg-config --cflags --libs --static ebpfrt)
"$work/quickstart"
