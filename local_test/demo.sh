#!/usr/bin/env bash
# `make demo`: the whole fleetcast pipeline on local defaults, no AWS account needed.
# generate 1,000 customers -> split (the Processing step) -> 2-host sharded training -> serving.
set -euo pipefail
cd "$(dirname "$0")/.."
fleetcast=.venv/bin/fleetcast
out=${FLEETCAST_DEMO_DIR:-demo}
customers=${FLEETCAST_DEMO_CUSTOMERS:-1000}

rm -rf "$out"
mkdir -p "$out/raw"
echo "== 1/4 generate: $customers customers, one year of daily readings"
"$fleetcast" generate --customers "$customers" --seed 42 --out "$out/raw/consumption.csv"
echo "== 2/4 split: one file per customer (what the SageMaker Processing job runs)"
"$fleetcast" split --input "$out/raw" --out "$out/customers"
echo "== 3/4 train: 2 emulated instances, ShardedByS3Key, checkpoints collected in $out/models"
"$fleetcast" local-train --data "$out/customers" --hosts 2 --models "$out/models" --work-dir "$out/train"
if [ -f local_test/demo_serve.sh ]; then
  echo "== 4/4 serve: Multi Model Server behind a local multi-model endpoint, called with boto3"
  bash local_test/demo_serve.sh "$out/models"
fi
echo "demo finished; everything it wrote is under $out/"
