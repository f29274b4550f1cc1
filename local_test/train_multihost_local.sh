#!/usr/bin/env bash
# A multi-instance training job, locally: N `train` containers, each with its own /opt/ml, its own
# resourceconfig.json (current_host algo-i of algo-1..algo-N) and its own shard of the channel, the way
# S3DistributionType=ShardedByS3Key hands every instance about 1/N of the objects (here: round-robin over
# the sorted customer files). Afterwards every host's checkpoints are gathered into
# test_dir/checkpoints, as the shared checkpoint S3 prefix would hold them, ready for serve_local.sh.
#
#   local_test/train_multihost_local.sh IMAGE [HOSTS] [CUSTOMERS]
set -euo pipefail

image=${1:?usage: $0 IMAGE [HOSTS] [CUSTOMERS]}
hosts=${2:-2}
customers=${3:-20}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
test_dir=$here/test_dir
work=${WORK_DIR:-$here/hosts}
((hosts >= 1)) || { echo "HOSTS must be at least 1" >&2; exit 2; }

rm -rf "$work" "$test_dir/checkpoints"
mkdir -p "$work/raw" "$work/all" "$work/split-reports" "$test_dir/checkpoints"
as_me=(--user "$(id -u):$(id -g)")
echo "== generate $customers customers and split them (the Processing step)"
docker run --rm "${as_me[@]}" -v "$work/raw:/sample" "$image" \
    fleetcast generate --customers "$customers" --seed 7 --out /sample/consumption.csv
docker run --rm "${as_me[@]}" \
    -v "$work/raw:/opt/ml/processing/input:ro" -v "$work/all:/opt/ml/processing/output" \
    -v "$work/split-reports:/opt/ml/processing/reports" \
    "$image" fleetcast split

host_names=()
for ((i = 1; i <= hosts; i++)); do host_names+=("algo-$i"); done
hosts_json=$(printf '"%s",' "${host_names[@]}")
hosts_json="[${hosts_json%,}]"

# Every customer's files go to one host: top-level entries of the split output (customer data only: the
# split's reports went to their own folder), sorted, dealt round-robin.
mapfile -t entries < <(find "$work/all" -mindepth 1 -maxdepth 1 -printf '%f\n' | LC_ALL=C sort)
((${#entries[@]} >= hosts)) || { echo "only ${#entries[@]} objects for $hosts hosts" >&2; exit 1; }
for ((i = 0; i < hosts; i++)); do
    root=$work/${host_names[i]}
    mkdir -p "$root/input/config" "$root/input/data/train" "$root/checkpoints" "$root/model" "$root/output"
    cp "$test_dir/input/config/hyperparameters.json" "$root/input/config/"
    printf '{"current_host": "%s", "hosts": %s, "network_interface_name": "eth0"}\n' \
        "${host_names[i]}" "$hosts_json" >"$root/input/config/resourceconfig.json"
    printf '{"train": {"ContentType": "text/csv", "TrainingInputMode": "File", "S3DistributionType": "ShardedByS3Key", "RecordWrapperType": "None"}}\n' \
        >"$root/input/config/inputdataconfig.json"
done
for ((j = 0; j < ${#entries[@]}; j++)); do
    mv "$work/all/${entries[j]}" "$work/${host_names[j % hosts]}/input/data/train/"
done

echo "== train on $hosts hosts"
# SageMaker names the job alike on every host; it is the run id the hosts' manifests name.
run=local-$(date -u +%Y%m%d-%H%M%S)
pids=()
for name in "${host_names[@]}"; do
    docker run --rm --hostname "$name" -e "TRAINING_JOB_NAME=$run" -v "$work/$name:/opt/ml" "$image" train 2>&1 |
        sed -u "s/^/[$name] /" &
    pids+=($!)
done
failed=0
for ((i = 0; i < hosts; i++)); do
    wait "${pids[i]}" || { echo "${host_names[i]} failed" >&2; failed=1; }
done

for name in "${host_names[@]}"; do
    cp "$work/$name"/checkpoints/*.tar.gz "$test_dir/checkpoints/" 2>/dev/null || true
done
echo "models: $(find "$test_dir/checkpoints" -name '*.tar.gz' | wc -l) gathered in $test_dir/checkpoints"
exit "$failed"
