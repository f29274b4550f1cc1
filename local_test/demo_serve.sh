#!/usr/bin/env bash
# The serving half of `make demo`: the real container server (the lean server by default; Multi Model
# Server, which needs Java, with FLEETCAST_DEMO_SERVER=mms) behind the local
# multi-model endpoint, called through boto3 exactly as an application calls SageMaker.
#
#   local_test/demo_serve.sh MODELS_DIR
#
# MODELS_DIR is the models prefix `fleetcast local-train` wrote: <run>/<customer>.tar.gz and the fleet
# manifest manifest.csv.gz, which says each customer's current version. Starts `fleetcast serve` and
# `fleetcast local-endpoint` on 127.0.0.1, invokes a handful of customers, prints forecasts, cold and
# warm latencies and the loaded-model count, writes one forecast plot next to MODELS_DIR, and stops
# both servers on exit (also on Ctrl-C or error).
# Environment: FLEETCAST_DEMO_SERVER (lean or mms; default lean), FLEETCAST_PYTHON (default
# .venv/bin/python), FLEETCAST_DEMO_MMS_PORT (the container's port, 18080; MMS needs
# a port below 32767), FLEETCAST_DEMO_ENDPOINT_PORT (18081), FLEETCAST_DEMO_MAX_LOADED (3).
set -euo pipefail

if [ $# -ne 1 ] || [ ! -d "$1" ]; then
  sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
cd "$(dirname "$0")/.."
models=$(cd "$1" && pwd)
out=$(dirname "$models")
python=${FLEETCAST_PYTHON:-.venv/bin/python}
server=${FLEETCAST_DEMO_SERVER:-lean}
mms_port=${FLEETCAST_DEMO_MMS_PORT:-18080}
endpoint_port=${FLEETCAST_DEMO_ENDPOINT_PORT:-18081}
max_loaded=${FLEETCAST_DEMO_MAX_LOADED:-3}
endpoint_url=http://127.0.0.1:$endpoint_port

if [ "$server" = mms ] && ! command -v java >/dev/null 2>&1 && [ -z "${JAVA_HOME:-}" ]; then
  cat >&2 <<'EOF'
Java was not found. The serving demo runs the real Multi Model Server, which needs a Java runtime:
  Debian/Ubuntu:  sudo apt-get install -y openjdk-17-jre-headless
  macOS:          brew install openjdk@17
then run `make demo` again (or set JAVA_HOME).
EOF
  exit 1
fi

# The first five customers of the fleet manifest.
mapfile -t customers < <("$python" - "$models" <<'PY'
import itertools
import sys
from pathlib import Path

from fleetcast.model import manifest

path = Path(sys.argv[1]) / manifest.MANIFEST_NAME
if path.is_file():
    for entry in itertools.islice(manifest.read_file(path), 5):
        print(entry.customer)
PY
)
if [ "${#customers[@]}" -eq 0 ]; then
  echo "no fleet manifest (manifest.csv.gz) in $models; train first (make demo does)" >&2
  exit 1
fi

for port in "$mms_port" "$endpoint_port"; do
  if curl -s -o /dev/null "http://127.0.0.1:$port/"; then
    echo "port $port is already in use; set FLEETCAST_DEMO_MMS_PORT / FLEETCAST_DEMO_ENDPOINT_PORT" >&2
    exit 1
  fi
done

work=$(mktemp -d "${TMPDIR:-/tmp}/fleetcast-demo-serve-XXXXXX")
serve_pid=""
endpoint_pid=""
shutdown() {
  local status=$?
  for pid in "$endpoint_pid" "$serve_pid"; do
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 60); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
      done
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  if [ "$status" -ne 0 ]; then
    echo "-- last lines of the server logs ($work):" >&2
    tail -n 15 "$work/serve.log" "$work/endpoint.log" >&2 2>/dev/null || true
  fi
  rm -rf "$work"
  echo "servers stopped"
}
trap shutdown EXIT
trap 'exit 130' INT TERM

wait_for() {
  local url=$1 what=$2 pid=$3
  for _ in $(seq 1 240); do
    if curl -sf -o /dev/null "$url"; then
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "$what exited during start-up" >&2
      return 1
    fi
    sleep 0.5
  done
  echo "$what did not answer $url within 120 s" >&2
  return 1
}

echo "-- starting fleetcast serve ($server server, multi-model mode) on 127.0.0.1:$mms_port"
SAGEMAKER_BASE_DIR="$work/opt_ml" SAGEMAKER_BIND_TO_PORT=$mms_port SAGEMAKER_MULTI_MODEL=true \
  FLEETCAST_SERVER=$server FLEETCAST_BIND_HOST=127.0.0.1 "$python" -m fleetcast.cli serve >"$work/serve.log" 2>&1 &
serve_pid=$!
wait_for "http://127.0.0.1:$mms_port/ping" "fleetcast serve" "$serve_pid"

echo "-- starting fleetcast local-endpoint on $endpoint_url (models $models, at most $max_loaded loaded)"
"$python" -m fleetcast.cli local-endpoint --models "$models" --container "http://127.0.0.1:$mms_port" \
  --port "$endpoint_port" --disk-cache "$work/cache" --max-loaded "$max_loaded" >"$work/endpoint.log" 2>&1 &
endpoint_pid=$!
wait_for "$endpoint_url/ping" "fleetcast local-endpoint" "$endpoint_pid"

echo "-- first (cold) invocations through boto3: download, POST /models, predict"
customer_flags=()
for customer in "${customers[@]}"; do
  customer_flags+=(--customer "$customer")
done
"$python" -m fleetcast.cli invoke --endpoint-url "$endpoint_url" --manifest "$models" "${customer_flags[@]}" \
  --period 7
echo

echo "-- cold versus warm latency"
"$python" - "$endpoint_url" "$models" "${customers[@]}" <<'PY'
import json
import statistics
import sys
import urllib.request

from fleetcast.client import TargetModels, request_forecast, runtime_client

url, models, customers = sys.argv[1], sys.argv[2], sys.argv[3:]
client = runtime_client(url)
targets = TargetModels(models)
recent = customers[-1]
warm = [request_forecast(client, "fleetcast", recent, 7, targets=targets).latency_ms for _ in range(20)]
cold = request_forecast(client, "fleetcast", customers[0], 7, targets=targets)  # evicted if over --max-loaded
stats = json.load(urllib.request.urlopen(url + "/fleetcast/stats", timeout=10))
print(f"warm invoke (customer {recent}, 20 calls): p50 {statistics.median(warm):.0f} ms, max {max(warm):.0f} ms")
print(f"customer {customers[0]} again: {cold.latency_ms:.0f} ms (model cache {cold.cache})")
print(f"loaded models: {stats['loaded_count']} (limit {stats['max_loaded']}): {', '.join(stats['loaded'])}")
print(f"endpoint counters: {json.dumps(stats['stats'], sort_keys=True)}")
PY

plot=$out/forecast_${customers[0]}.png
"$python" -m fleetcast.cli plot --models "$models" --customer "${customers[0]}" --period 30 \
  --endpoint-url "$endpoint_url" --out "$plot"
echo "-- forecast plot written to $plot"
