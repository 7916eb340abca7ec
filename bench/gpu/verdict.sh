# Sourced by the bench/gpu scripts that run an option's stages (tests, conformance,
# A/B) under `timeout`: one line per failed stage, and $status set to 1.
#   verdict STAGE EXIT_STATUS "what to keep when it failed"
verdict() {
    if [[ $2 -eq 124 ]]; then
        echo "!! $1 TIMED OUT (slow kernel compiles, not a wrong result): rerun STAGES=$1"
        status=1
    elif [[ $2 -ne 0 ]]; then
        echo "!! $1 FAILED: $3"
        status=1
    fi
}
