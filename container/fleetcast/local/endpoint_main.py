"""`fleetcast local-endpoint`: wire the models prefix, disk cache and container together and serve."""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

from fleetcast.local.cache_policy import CachePolicy
from fleetcast.local.container_client import ContainerClient
from fleetcast.local.endpoint import MultiModelEndpoint
from fleetcast.local.endpoint_http import serve_endpoint_forever
from fleetcast.local.model_source import open_source
from fleetcast.models_prefix import open_prefix

log = logging.getLogger(__name__)


def local_endpoint_main(
    *,
    models: str,
    container: str,
    host: str,
    port: int,
    max_loaded: int | None,
    disk_cache: Path | None,
    disk_cache_mb: float | None,
    container_models_dir: str | None,
    endpoint_name: str | None,
    variant: str,
    model_ready_timeout: float,
    s3_endpoint_url: str | None,
    region: str | None,
) -> int:
    if max_loaded is not None and max_loaded < 1:
        log.error("--max-loaded must be at least 1")
        return 2
    try:
        source = open_source(models, s3_endpoint_url=s3_endpoint_url, region=region)
        s3 = getattr(source, "client", None)  # the fleet manifest is read beside the models, alike
        manifest = open_prefix(models, s3)
    except (FileNotFoundError, ValueError) as exc:
        log.error("cannot use --models %s: %s", models, exc)
        return 2
    temporary = disk_cache is None
    cache_dir = Path(tempfile.mkdtemp(prefix="fleetcast-endpoint-cache-")) if temporary else disk_cache
    policy = CachePolicy(
        max_loaded=max_loaded,
        disk_cache_bytes=None if disk_cache_mb is None else int(disk_cache_mb * 1024 * 1024),
    )
    client = ContainerClient(container)
    if not client.ping():
        log.warning("the container at %s does not answer /ping yet; requests fail until it does", container)
    endpoint = MultiModelEndpoint(
        source,
        client,
        cache_dir,
        container_models_dir=container_models_dir,
        policy=policy,
        endpoint_name=endpoint_name or "fleetcast",
        model_ready_timeout_s=model_ready_timeout,
        manifest=manifest,
    )
    try:
        return serve_endpoint_forever(
            endpoint, host=host, port=port, endpoint_name=endpoint_name, variant=variant
        )
    finally:
        if temporary:
            shutil.rmtree(cache_dir, ignore_errors=True)
