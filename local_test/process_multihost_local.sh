#!/usr/bin/env bash
# A multi-instance Processing job, locally: the split step of `python -m launch process` on N containers.
# Each container gets what SageMaker gives a Processing instance: /opt/ml/config/resourceconfig.json
# (current_host algo-i of algo-1..algo-N), /opt/ml/config/processingjobconfig.json (the very request
# `launch process --dry-run` prints), the raw input (FullyReplicated: every file; --shard-input: its
# round-robin share of the sorted files), and the request's ContainerArguments. Afterwards every instance's
# outputs are gathered into one folder per ProcessingOutput, as the S3 upload does, and a key written by
# two instances fails the run.
#
#   local_test/process_multihost_local.sh IMAGE [HOSTS] [CUSTOMERS] [BUCKETS] [--shard-input]
#
# Result: $WORK_DIR/s3/customers (the training channel) and $WORK_DIR/s3/reports.
set -euo pipefail

image=${1:?usage: $0 IMAGE [HOSTS] [CUSTOMERS] [BUCKETS] [--shard-input]}
hosts=${2:-3}
customers=${3:-40}
buckets=${4:-4}
shard=()
[[ ${5:-} == --shard-input ]] && shard=(--shard-input)
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
work=${WORK_DIR:-$here/processing}
python=${PYTHON:-$repo/.venv/bin/python}
((hosts >= 1)) || { echo "HOSTS must be at least 1" >&2; exit 2; }

rm -rf "$work"
mkdir -p "$work/raw" "$work/s3/customers" "$work/s3/reports"
as_me=(--user "$(id -u):$(id -g)")
echo "== generate $customers customers into 4 raw files (each customer in one file)"
docker run --rm "${as_me[@]}" -v "$work/raw:/sample" "$image" \
    fleetcast generate --customers "$customers" --seed 7 --rows-per-customer 30 --out /sample/all.csv
"$python" - "$work/raw" <<'EOF'
import sys
from pathlib import Path

raw = Path(sys.argv[1])
header, *lines = (raw / "all.csv").read_text().splitlines()
files = [[header] for _ in range(4)]
for line in lines:
    files[int(line.split(",", 1)[0]) % 4].append(line)
for i, body in enumerate(files):
    (raw / f"raw-{i}.csv").write_text("\n".join(body) + "\n")
(raw / "all.csv").unlink()
EOF

echo "== the request launch would send"
(cd "$repo" && "$python" -m launch process --image "$image" --role arn:aws:iam::123456789012:role/local \
    --bucket local-bucket --prefix local --region us-east-1 --instance-count "$hosts" --buckets "$buckets" \
    "${shard[@]}" --dry-run) >"$work/request.json"
mapfile -t arguments < <("$python" -c '
import json, sys
print("\n".join(json.load(open(sys.argv[1]))["request"]["AppSpecification"]["ContainerArguments"]))
' "$work/request.json")
sharded=$("$python" -c '
import json, sys
print(json.load(open(sys.argv[1]))["request"]["ProcessingInputs"][0]["S3Input"]["S3DataDistributionType"])
' "$work/request.json")

host_names=()
for ((i = 1; i <= hosts; i++)); do host_names+=("algo-$i"); done
hosts_json=$(printf '"%s",' "${host_names[@]}")
hosts_json="[${hosts_json%,}]"
mapfile -t raw_files < <(find "$work/raw" -name '*.csv' -printf '%f\n' | LC_ALL=C sort)

for ((i = 0; i < hosts; i++)); do
    name=${host_names[i]}
    root=$work/$name
    mkdir -p "$root/config" "$root/input" "$root/output" "$root/reports"
    printf '{"current_host": "%s", "hosts": %s, "network_interface_name": "eth0"}\n' "$name" "$hosts_json" \
        >"$root/config/resourceconfig.json"
    "$python" -c 'import json, sys; json.dump(json.load(open(sys.argv[1]))["request"], open(sys.argv[2], "w"))' \
        "$work/request.json" "$root/config/processingjobconfig.json"
    for ((j = 0; j < ${#raw_files[@]}; j++)); do
        if [[ $sharded != ShardedByS3Key ]] || ((j % hosts == i)); then
            cp "$work/raw/${raw_files[j]}" "$root/input/"
        fi
    done
    echo "== $name ($sharded input: $(find "$root/input" -name '*.csv' | wc -l) raw files)"
    docker run --rm "${as_me[@]}" --hostname "$name" \
        -v "$root/config:/opt/ml/config:ro" -v "$root/input:/opt/ml/processing/input:ro" \
        -v "$root/output:/opt/ml/processing/output" -v "$root/reports:/opt/ml/processing/reports" \
        "$image" fleetcast split "${arguments[@]}" 2>&1 | sed -u "s/^/[$name] /"
done

echo "== gather the outputs, as the S3 upload of each ProcessingOutput does"
collisions=0
for name in "${host_names[@]}"; do
    for pair in output:customers reports:reports; do
        local_dir=$work/$name/${pair%%:*}
        target=$work/s3/${pair##*:}
        while IFS= read -r key; do
            if [[ -e $target/$key ]]; then
                echo "two instances wrote $key" >&2
                collisions=$((collisions + 1))
            fi
            mkdir -p "$(dirname "$target/$key")"
            cp "$local_dir/$key" "$target/$key"
        done < <(cd "$local_dir" && find . -type f -printf '%P\n')
    done
done
rows_in=$(find "$work/raw" -name '*.csv' -print0 | xargs -0 awk 'FNR > 1' | wc -l)
rows_out=$(find "$work/s3/customers" -name '*.csv' -print0 | xargs -0 awk 'FNR > 1' | wc -l)
echo "rows in: $rows_in, rows out: $rows_out, keys written twice: $collisions"
echo "channel: $work/s3/customers ($(find "$work/s3/customers" -type f | wc -l) objects), reports: $work/s3/reports"
[[ $collisions -eq 0 && $rows_in -eq $rows_out ]]
