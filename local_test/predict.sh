#!/usr/bin/env bash
# Call a running `serve` container's multi-model API with curl, the way the SageMaker platform does:
# load one model from a path (POST /models), invoke it, print the forecast as a table, unload it.
#
#   local_test/predict.sh MODEL [PERIOD]
#
# MODEL is a <customer>.tar.gz (extracted here first) or an extracted model folder holding model.json and
# metadata.json. Environment:
#   FLEETCAST_CONTAINER_URL         the container (default http://127.0.0.1:8080)
#   FLEETCAST_MODELS_DIR            where a tarball is extracted (default: a temporary folder)
#   FLEETCAST_CONTAINER_MODELS_DIR  the same folder as the container sees it; for a docker container,
#                                   mount FLEETCAST_MODELS_DIR at /opt/ml/models and set this to /opt/ml/models
#   FLEETCAST_PYTHON                prints the table with this repository's fleetcast.client (default python3)
set -euo pipefail

usage() {
  sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
}

[ $# -ge 1 ] && [ $# -le 2 ] || usage
model=$1
period=${2:-7}
url=${FLEETCAST_CONTAINER_URL:-http://127.0.0.1:8080}
repo=$(cd "$(dirname "$0")/.." && pwd)
python=${FLEETCAST_PYTHON:-$(command -v python3 || command -v python)}

case $period in
  '' | *[!0-9]*) echo "PERIOD must be a positive integer, got '$period'" >&2; exit 2 ;;
esac

cleanup_dir=""
loaded=""
response=$(mktemp)
cleanup() {
  rm -f "$response"
  if [ -n "$loaded" ]; then
    echo "== DELETE /models/$loaded"
    curl -sS -X DELETE "$url/models/$loaded" || true
    echo
  fi
  if [ -n "$cleanup_dir" ]; then
    rm -rf "$cleanup_dir"
  fi
}
trap cleanup EXIT

if ! curl -sf -o /dev/null "$url/ping"; then
  echo "no container answers $url/ping; start one first: fleetcast serve  (or: docker run -p 8080:8080 IMAGE serve)" >&2
  exit 1
fi

if [ -f "$model" ]; then
  name=$(basename "$model" .tar.gz)
  if [ -n "${FLEETCAST_MODELS_DIR:-}" ]; then
    models_dir=$FLEETCAST_MODELS_DIR
  else
    models_dir=$(mktemp -d)
    cleanup_dir=$models_dir
  fi
  rm -rf "${models_dir:?}/$name"
  mkdir -p "$models_dir/$name/model"
  # GNU tar refuses members with '..' and strips leading '/'; our archives hold two plain files.
  tar --no-same-owner --no-same-permissions -xzf "$model" -C "$models_dir/$name/model"
  container_models_dir=${FLEETCAST_CONTAINER_MODELS_DIR:-$(cd "$models_dir" && pwd)}
  model_path=$container_models_dir/$name/model
elif [ -d "$model" ]; then
  name=$(basename "$(dirname "$(cd "$model" && pwd)")")
  model_path=$(cd "$model" && pwd)
else
  echo "no such model archive or folder: $model" >&2
  exit 2
fi
# MMS model names: letters, digits, '-' and '_' only.
name=customer-$(printf '%s' "$name" | tr -c 'A-Za-z0-9_-' '_')

echo "== POST /models  model_name=$name url=$model_path"
status=$(curl -sS -o "$response" -w '%{http_code}' -X POST "$url/models" \
  -H 'Content-Type: application/json' \
  -d "{\"model_name\": \"$name\", \"url\": \"$model_path\"}")
cat "$response"
echo
case $status in
  2*) loaded=$name ;;
  409) echo "(already loaded; leaving it loaded)" ;;
  *)
    echo "load failed with HTTP $status" >&2
    if [ "$status" = 404 ] && [ -n "$cleanup_dir" ]; then
      # The usual cause: a docker container cannot see the temporary folder the archive went to.
      echo "the server could not see $model_path. A container sees only what is mounted: with" \
        "serve_local.sh set FLEETCAST_MODELS_DIR=local_test/test_dir/models" \
        "FLEETCAST_CONTAINER_MODELS_DIR=/opt/ml/models" >&2
    fi
    exit 1
    ;;
esac

# No "intervals" field: the model's own choice, as `fleetcast invoke` does (uncertainty_samples=0 models
# answer point forecasts instead of a 400).
echo "== POST /models/$name/invoke  {\"period\": $period}"
code=$(curl -sS -o "$response" -w '%{http_code}' -X POST "$url/models/$name/invoke" \
  -H 'Content-Type: application/json' -H 'Accept: application/json' \
  -d "{\"period\": $period}")
if [ "$code" != 200 ]; then
  echo "invoke answered HTTP $code:" >&2
  "$python" -m json.tool < "$response" >&2 || cat "$response" >&2
  exit 1
fi
# The one forecast table, fleetcast.client's (the same as `fleetcast invoke` prints).
PYTHONPATH="$repo/container${PYTHONPATH:+:$PYTHONPATH}" "$python" -m fleetcast.client table "$response"
