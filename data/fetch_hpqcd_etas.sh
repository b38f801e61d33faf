#!/usr/bin/env bash
# Real public data for the noise tool: HPQCD's eta_s correlator (225 configurations, T = 64,
# periodic), shipped in the examples of the corrfitter 8.2 sdist (GPL; fetched at run time, never
# copied into this repository).  Folds it, keeps t = 1..32 and writes a noise file with
# make_noise_file.py; the data set itself is kept beside it as hpqcd_etas.data (the input of
# run_etas_example.py).
#
#   usage: data/fetch_hpqcd_etas.sh [OUTPUT [extra make_noise_file.py options, e.g. --bin 5]]
#   default OUTPUT: data/hpqcd_etas_T64.h5 (do not commit it or hpqcd_etas.data: GPL data)
#   exit status 3: the sdist could not be downloaded (no network / registry)
#   the interpreter: $SPECTRAL_PYTHON (default python3), for pip and make_noise_file.py alike;
#   run_etas_example.py and the tests set it to their own
set -euo pipefail
python=${SPECTRAL_PYTHON:-python3}
repo=$(cd "$(dirname "$0")/.." && pwd)
output=${1:-$repo/data/hpqcd_etas_T64.h5}
shift $(( $# > 0 ? 1 : 0 ))
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if ! "$python" -m pip download --quiet --no-deps --no-binary :all: corrfitter==8.2 -d "$work"; then
    echo "error: could not download the corrfitter 8.2 sdist (network or package index unavailable)" >&2
    exit 3
fi
tar -xzf "$work/corrfitter-8.2.tar.gz" -C "$work"   # whole sdist: etas.data is a hard link
"$python" "$repo/make_noise_file.py" "$work/corrfitter-8.2/examples/etas.data" --format gvar \
    --tag etas --fold --t-range 1-32 -o "$output" \
    --source "HPQCD eta_s correlator, 225 configurations, T=64 (corrfitter 8.2 examples/etas.data, GPL), folded" \
    "$@"
cp "$work/corrfitter-8.2/examples/etas.data" "$(dirname "$output")/hpqcd_etas.data"
