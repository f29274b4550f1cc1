#!/usr/bin/env bash
# Run the image's `serve` as a SageMaker multi-model endpoint would, on 127.0.0.1:${PORT:-8080}:
#   docker run -p 127.0.0.1:8080:8080 -v test_dir/models:/opt/ml/models IMAGE serve
#
#   local_test/serve_local.sh IMAGE
#
# Like the platform, it first extracts every checkpoint test_dir/checkpoints/<customer>.tar.gz (from
# train_local.sh) to test_dir/models/<customer>/model/. Then, from another shell, load, invoke and unload:
#   curl -X POST localhost:8080/models -d '{"model_name": "c7", "url": "/opt/ml/models/7/model"}'
#   curl -X POST localhost:8080/models/c7/invoke -H 'Content-Type: application/json' -d '{"period": 7}'
#   curl -X DELETE localhost:8080/models/c7
# or let predict.sh do all three:
#   FLEETCAST_MODELS_DIR=local_test/test_dir/models FLEETCAST_CONTAINER_MODELS_DIR=/opt/ml/models \
#     local_test/predict.sh local_test/test_dir/checkpoints/7.tar.gz
# Stop with Ctrl-C (the container gets SIGTERM and is removed).
set -euo pipefail

image=${1:?usage: $0 IMAGE}
port=${PORT:-8080}
test_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/test_dir
models=$test_dir/models

rm -rf "$models"
mkdir -p "$models"
shopt -s nullglob
archives=("$test_dir"/checkpoints/*.tar.gz)
for archive in "${archives[@]}"; do
    name=$(basename "$archive" .tar.gz)
    mkdir -p "$models/$name/model"
    tar -xzf "$archive" -C "$models/$name/model"
done
echo "extracted ${#archives[@]} models under $models (run train_local.sh first if that is 0)"

exec docker run --rm --name "${CONTAINER_NAME:-fleetcast-serve}" \
    -p "127.0.0.1:$port:8080" \
    -v "$models:/opt/ml/models" \
    -e SAGEMAKER_MULTI_MODEL=true \
    "$image" serve
