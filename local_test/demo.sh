#!/usr/bin/env bash
# `make demo`: the whole fleetcast pipeline on local defaults, no AWS account needed.
# generate 1,000 customers -> split (the Processing step) -> 2-host sharded training -> the batch forecast of
# every customer -> the fleet report (demo/report.html) -> serving through the lean server
# (FLEETCAST_DEMO_SERVER=mms for Multi Model Server).
set -euo pipefail
cd "$(dirname "$0")/.."
fleetcast=.venv/bin/fleetcast
out=${FLEETCAST_DEMO_DIR:-demo}
customers=${FLEETCAST_DEMO_CUSTOMERS:-1000}

rm -rf "$out"
mkdir -p "$out/raw"
echo "== 1/6 generate: $customers customers, one year of daily readings"
"$fleetcast" generate --customers "$customers" --seed 42 --out "$out/raw/consumption.csv"
echo "== 2/6 split: one file per customer (what the SageMaker Processing job runs)"
"$fleetcast" split --input "$out/raw" --out "$out/customers"
echo "== 3/6 train: 2 emulated instances, ShardedByS3Key, checkpoints collected in $out/models"
"$fleetcast" local-train --data "$out/customers" --hosts 2 --models "$out/models" --work-dir "$out/train"
echo "== 4/6 forecast: every customer, 7 days ahead, one dataset (what the batch Processing job runs)"
"$fleetcast" forecast --models "$out/models" --period 7 --out "$out/forecasts" --reports "$out/forecast-reports"
echo "== 5/6 report: one HTML page of the fleet"
# Run in the open: its progress line goes to stdout too, and capturing the command hid it.
"$fleetcast" report --train-output "$out/train" --models "$out/models" --forecasts "$out/forecasts" \
  --out "$out/report.html"
report=$(realpath "$out/report.html")
if [ -f local_test/demo_serve.sh ]; then
  echo "== 6/6 serve: the ${FLEETCAST_DEMO_SERVER:-lean} server behind a local multi-model endpoint, called with boto3"
  bash local_test/demo_serve.sh "$out/models"
fi
echo "fleet report: $report"
echo "demo finished; everything it wrote is under $out/"
