#!/usr/bin/env bash
# Run the image's batch forecast exactly as a SageMaker Processing job would:
#   docker run -v MODELS:/opt/ml/processing/input/models -v OUT:/opt/ml/processing/output IMAGE fleetcast forecast
#
#   local_test/forecast.sh IMAGE [MODELS_DIR] [PERIOD] [INSTANCES]
#
# MODELS_DIR (default test_dir/checkpoints, what train_local.sh writes) holds the archives, and the fleet
# manifest when there is one. Every instance gets the whole folder (FullyReplicated, as `launch forecast
# --models-uri` feeds it; by default `launch forecast` and the pipeline deal the manifest's archives out
# instead) and its own /opt/ml/config/resourceconfig.json, as Processing instances do; each forecasts the
# customers whose id hashes to it. The dataset lands in test_dir/forecast/forecasts/forecasts-<instance>
# .csv.gz, failures and summaries in test_dir/forecast/forecast-reports/ (FLEETCAST_FORECAST_OUT moves
# test_dir/forecast elsewhere). FLEETCAST_FORECAST_REGRESSORS names future regressor values (a
# timestamp,<regressor>,... CSV or a folder of <customer>.csv), mounted as `launch forecast
# --regressors-uri` delivers them.
set -euo pipefail

image=${1:?usage: $0 IMAGE [MODELS_DIR] [PERIOD] [INSTANCES]}
test_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/test_dir
models=$(cd "${2:-$test_dir/checkpoints}" && pwd)
period=${3:-7}
instances=${4:-1}
out=${FLEETCAST_FORECAST_OUT:-$test_dir/forecast}
mounts=()
extra=()
if [[ -n "${FLEETCAST_FORECAST_REGRESSORS:-}" ]]; then
    # docker run -v would create a missing source as an empty root-owned folder: refuse it here instead.
    if [[ ! -e "$FLEETCAST_FORECAST_REGRESSORS" ]]; then
        echo "error: FLEETCAST_FORECAST_REGRESSORS: no file or folder at $FLEETCAST_FORECAST_REGRESSORS" >&2
        exit 2
    fi
    source_path=$(realpath "$FLEETCAST_FORECAST_REGRESSORS")
    inside=/opt/ml/processing/input/regressors
    if [[ -f "$source_path" ]]; then
        inside="$inside/$(basename "$source_path")"
    fi
    mounts=(-v "$source_path:$inside:ro")
    extra=(--regressors "$inside")
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

rm -rf "$out"
mkdir -p "$out"
hosts=$(seq -f '"algo-%g"' -s, 1 "$instances")
echo "== forecast $models, $period steps, $instances instance(s)"
pids=()
for index in $(seq 1 "$instances"); do
    mkdir -p "$work/algo-$index"
    printf '{"current_host": "algo-%s", "hosts": [%s]}\n' "$index" "$hosts" >"$work/algo-$index/resourceconfig.json"
    docker run --rm --user "$(id -u):$(id -g)" \
        -v "$models:/opt/ml/processing/input/models:ro" \
        -v "$work/algo-$index:/opt/ml/config:ro" \
        -v "$out:/opt/ml/processing/output" \
        "${mounts[@]}" \
        "$image" fleetcast forecast --period "$period" "${extra[@]}" &
    pids+=($!)
done
status=0
for pid in "${pids[@]}"; do
    wait "$pid" || status=$?
done
echo "dataset: $(find "$out/forecasts" -name '*.csv.gz' | sort | tr '\n' ' ')"
exit "$status"
