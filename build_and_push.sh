#!/usr/bin/env bash
# Build the fleetcast image and push it to Amazon ECR.
#
#   ./build_and_push.sh [--region REGION] [--no-push] IMAGE_NAME [TAG]
#
# IMAGE_NAME is the ECR repository (created if missing). TAG defaults to the short git commit (with
# "-dirty" when the work tree has uncommitted changes); the image is also tagged `latest`. The region
# comes from --region, else AWS_REGION, AWS_DEFAULT_REGION, `aws configure get region`. The last line
# printed on stdout is the full image URI, for `launch` or a SageMaker job's image setting.
# --no-push only builds and tags locally (no AWS calls).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly ROOT

log() { printf 'build_and_push: %s\n' "$*" >&2; }
die() {
    printf 'build_and_push: error: %s\n' "$*" >&2
    exit 1
}
usage() {
    sed -n '2,9s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
}

region="" push=true positional=()
while (($# > 0)); do
    case $1 in
    --region)
        (($# >= 2)) || die "--region needs a value"
        region=$2
        shift 2
        ;;
    --region=*)
        region=${1#--region=}
        shift
        ;;
    --no-push)
        push=false
        shift
        ;;
    -h | --help)
        usage
        exit 0
        ;;
    -*) die "unknown option: $1 (see --help)" ;;
    *)
        positional+=("$1")
        shift
        ;;
    esac
done
if ((${#positional[@]} < 1 || ${#positional[@]} > 2)); then
    usage
    exit 2
fi

image=${positional[0]}
# ECR's own rules for repository names and tags, checked here so mistakes fail before a long build.
[[ $image =~ ^([a-z0-9]+([._-][a-z0-9]+)*/)*[a-z0-9]+([._-][a-z0-9]+)*$ ]] ||
    die "'$image' is not a valid repository name (lowercase letters, digits, and . _ - / separators)"
if ((${#positional[@]} == 2)); then
    tag=${positional[1]}
elif tag=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null); then
    git -C "$ROOT" diff --quiet HEAD 2>/dev/null || tag+=-dirty
else
    die "no TAG given and $ROOT is not a git checkout to take the commit from; pass a TAG"
fi
[[ $tag =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || die "'$tag' is not a valid image tag"

command -v docker >/dev/null ||
    die "docker not found on PATH: install Docker (on Debian: apt-get install docker.io, or run .ci/docker-engine.sh)"
docker version --format '{{.Server.Version}}' >/dev/null 2>&1 ||
    die "cannot reach a Docker engine (DOCKER_HOST=${DOCKER_HOST:-default socket}); start Docker or run: export DOCKER_HOST=\$(.ci/docker-engine.sh)"

if [[ $push == true ]]; then
    command -v aws >/dev/null || die "the aws CLI is not on PATH (pip install awscli); needed to push (or use --no-push)"
    if [[ -z $region ]]; then
        region=${AWS_REGION:-${AWS_DEFAULT_REGION:-$(aws configure get region 2>/dev/null || true)}}
    fi
    [[ -n $region ]] || die "no AWS region: pass --region, or set AWS_REGION / AWS_DEFAULT_REGION, or run 'aws configure'"
    if ! account=$(aws sts get-caller-identity --region "$region" --query Account --output text 2>&1); then
        die "AWS credentials are missing or not valid (aws sts get-caller-identity failed: ${account//$'\n'/ })"
    fi
    log "account $account, region $region"

    if ! uri=$(aws ecr describe-repositories --region "$region" --repository-names "$image" \
        --query 'repositories[0].repositoryUri' --output text 2>&1); then
        [[ $uri == *RepositoryNotFoundException* ]] || die "cannot look up ECR repository '$image': $uri"
        log "creating ECR repository $image"
        uri=$(aws ecr create-repository --region "$region" --repository-name "$image" \
            --query 'repository.repositoryUri' --output text)
    fi
    registry=${uri%%/*}
    log "logging in to $registry"
    aws ecr get-login-password --region "$region" |
        docker login --username AWS --password-stdin "$registry" >&2 ||
        die "docker login to $registry failed"
fi

log "building $image:$tag from $ROOT"
docker build --tag "$image:$tag" --tag "$image:latest" "$ROOT" >&2

if [[ $push == false ]]; then
    log "built $image:$tag (not pushed)"
    printf '%s\n' "$image:$tag"
    exit 0
fi

for t in "$tag" latest; do
    docker tag "$image:$tag" "$uri:$t"
    log "pushing $uri:$t"
    docker push "$uri:$t" >&2
done
printf '%s\n' "$uri:$tag"
