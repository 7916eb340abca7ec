#!/usr/bin/env bash
# Several bench/gpu scripts in one device call, one after another, each with
# its own $OUT/<name>/ and log, then everything in one $OUT/results.tgz (a
# call returns at most 8 files). A failing script does not stop the others;
# the exit status is 1 if any failed.
#   OUT=/out bash bench/gpu/run_many.sh sanity.sh logic_nodes.sh
#   OUT=/out PART=2 bash bench/gpu/run_many.sh race.sh      # variables pass through
set -uo pipefail
: "${OUT:?set OUT to the folder whose contents come back}"
[ $# -gt 0 ] || { echo "usage: OUT=DIR bash bench/gpu/run_many.sh SCRIPT.sh [SCRIPT.sh ...]" >&2; exit 2; }
for script in "$@"; do
    [ -f "bench/gpu/$script" ] || { echo "no such script: bench/gpu/$script" >&2; exit 2; }
done
failed=""
for script in "$@"; do
    name=${script%.sh}
    mkdir -p "$OUT/$name"
    echo "=== [$(date -u +%T)] $script"
    if ! OUT="$OUT/$name" bash "bench/gpu/$script" > "$OUT/$name/run.log" 2>&1; then
        failed="$failed $script"
        echo "!!! $script failed: tail of $name/run.log"; tail -20 "$OUT/$name/run.log"
    else
        tail -5 "$OUT/$name/run.log"
    fi
    # packed after every script, so a call cut by its time limit still brings the finished ones back
    tar czf "$OUT/results.tgz" -C "$OUT" $(for s in "$@"; do [ -d "$OUT/${s%.sh}" ] && echo "${s%.sh}"; done)
done
tar czf "$OUT/results.tgz" -C "$OUT" $(for s in "$@"; do echo "${s%.sh}"; done)
echo "=== [$(date -u +%T)] done; failed:${failed:- none}"
[ -z "$failed" ]
