#!/usr/bin/env bash
# Run the image's `train` exactly as SageMaker would, on a small generated sample:
#   docker run -v local_test/test_dir:/opt/ml IMAGE train
#
#   local_test/train_local.sh IMAGE [CUSTOMERS]
#
# The sample is made with the image itself: `fleetcast generate` writes a raw CSV, then the Processing step
# (`fleetcast split`, with its default /opt/ml/processing paths) lays it out under
# test_dir/input/data/train. Models land in test_dir/checkpoints/<customer>.tar.gz, the report in
# test_dir/output/data; serve them with serve_local.sh. Hyperparameters: test_dir/input/config.
set -euo pipefail

image=${1:?usage: $0 IMAGE [CUSTOMERS]}
customers=${2:-20}
test_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/test_dir
data=$test_dir/input/data/train
raw=$(mktemp -d)
trap 'rm -rf "$raw"' EXIT

rm -rf "$data" "$test_dir/checkpoints" "$test_dir/model" "$test_dir/output"
mkdir -p "$data" "$test_dir/checkpoints" "$test_dir/model" "$test_dir/output"

# Sample generation and the split run as the calling user, so the files stay theirs.
as_me=(--user "$(id -u):$(id -g)")
echo "== generate $customers customers"
mkdir -p "$raw/input"
docker run --rm "${as_me[@]}" -v "$raw/input:/sample" "$image" \
    fleetcast generate --customers "$customers" --seed 7 --out /sample/consumption.csv
echo "== split (the Processing step) into $data"
# Its two outputs, as `launch process` maps them: the channel, and the split's own reports apart from it.
mkdir -p "$raw/reports"
docker run --rm "${as_me[@]}" \
    -v "$raw/input:/opt/ml/processing/input:ro" -v "$data:/opt/ml/processing/output" \
    -v "$raw/reports:/opt/ml/processing/reports" \
    "$image" fleetcast split
grep -E '"(customers|rows_written|rows_dropped)"' "$raw/reports/split_summary.json"

echo "== train"
docker run --rm -v "$test_dir:/opt/ml" "$image" train
echo "models: $(find "$test_dir/checkpoints" -name '*.tar.gz' | wc -l) in $test_dir/checkpoints"
