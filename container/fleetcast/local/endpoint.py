"""What a SageMaker multi-model endpoint does between InvokeEndpoint and the container.

For each request: resolve the TargetModel under the models prefix; if its model is not loaded, download
and extract it to the disk cache (once, however many requests ask at the same time) and `POST /models` it,
evicting least recently used models when over `--max-loaded` or when the container answers 507; then
`POST /models/<id>/invoke`. Timings mirror the CloudWatch MME metrics: ModelCacheHit,
ModelDownloadingTime, ModelLoadingWaitTime, and the container's own latency.

Like SageMaker's, the cache is keyed by TargetModel and never revalidated: once a name is on disk or
loaded, a new object under the same name is not seen until the model is evicted. That is why training
writes every version under a new name (`<run>/<customer>.tar.gz`, see fleetcast.model.manifest).

Concurrency: one lock guards the bookkeeping and is never held during I/O. Each model has at most one
transition in flight (a load or an unload), kept as a Future that later requests wait on; that is the
single-flight. Requests pin the model they invoke, and eviction never picks a pinned or busy model.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from fleetcast.data.customer_ids import safe_customer_id
from fleetcast.local.cache_policy import CachePolicy
from fleetcast.local.container_client import ContainerClient, ContainerResponse, ContainerUnavailableError
from fleetcast.local.model_cache import DiskCache, model_id
from fleetcast.local.model_source import (
    InvalidTargetModelError,
    ModelNotFoundError,
    ModelSource,
    check_target_model,
)
from fleetcast.model.manifest import MANIFEST_NAME, ManifestEntry, ManifestError
from fleetcast.models_prefix import ModelsPrefix, resolve
from fleetcast.serving import errors
from fleetcast.serving.protocol import clip
from fleetcast.serving.safe_tar import UnsafeArchiveError

log = logging.getLogger(__name__)

# Request headers the platform passes on to the container (matched case-insensitively).
FORWARDED_HEADERS = (
    "Content-Type",
    "Accept",
    "X-Amzn-SageMaker-Custom-Attributes",
    "X-Amzn-SageMaker-Target-Model",
    "X-Amzn-SageMaker-Inference-Id",
)
MAX_ACQUIRE_ROUNDS = 5


class EndpointError(errors.ServingError):
    """An InvokeEndpoint error, named as boto3 knows it (`x-amzn-ErrorType`).

    Its HTTP status is `errors.http_status`'s for the serving error it also is (InternalFailure: 500).
    """

    error_type = "InternalFailure"

    def __init__(self, message: str) -> None:
        super().__init__(message)

    @property
    def status(self) -> int:
        return errors.http_status(self)

    def body(self) -> dict[str, object]:
        return {"Message": self.message, "message": self.message}


class ValidationError(EndpointError, errors.InvalidRequestError):
    error_type = "ValidationError"


class CustomerNotFoundError(EndpointError, errors.ModelNotLoadedError):
    """No version of the customer in the fleet manifest (our customer route only, not a SageMaker API)."""

    error_type = "ValidationError"


class PayloadTooLargeError(EndpointError, errors.PayloadTooLargeError):
    error_type = "ValidationError"


class ModelNotReadyError(EndpointError, errors.ModelNotReadyError):
    error_type = "ModelNotReadyException"


class ServiceUnavailableError(EndpointError, errors.UnavailableError):
    error_type = "ServiceUnavailable"


class ModelError(EndpointError, errors.ModelFailedError):
    """The container answered 4xx/5xx; SageMaker relays it as 424 with the original status and body."""

    error_type = "ModelError"

    def __init__(self, original_status: int, original_message: str, log_stream_arn: str, what: str) -> None:
        kind = "client" if original_status < 500 else "server"
        super().__init__(
            f"Received {kind} error ({original_status}) from the model container while {what} with message "
            f'"{original_message}". See the container log for more information.'
        )
        self.original_status = original_status
        self.original_message = original_message
        self.log_stream_arn = log_stream_arn

    def body(self) -> dict[str, object]:
        return {
            **super().body(),
            "OriginalStatusCode": self.original_status,
            "OriginalMessage": self.original_message,
            "LogStreamArn": self.log_stream_arn,
        }


@dataclass
class RequestTimings:
    """Per-request metrics; `cache` is ModelCacheHit, `load_wait_ms` is ModelLoadingWaitTime."""

    target_model: str = ""
    model_name: str = ""
    cache: str = "-"  # hit | miss once the model was looked up
    disk: str = "-"
    download_ms: float = 0.0
    load_ms: float = 0.0
    load_wait_ms: float = 0.0
    invoke_ms: float = 0.0
    status: int = 0

    def headers(self) -> dict[str, str]:
        return {
            "X-Fleetcast-Cache": self.cache,
            "X-Fleetcast-Disk": self.disk,
            "X-Fleetcast-Download-Ms": f"{self.download_ms:.1f}",
            "X-Fleetcast-Load-Ms": f"{self.load_ms:.1f}",
            "X-Fleetcast-Load-Wait-Ms": f"{self.load_wait_ms:.1f}",
            "X-Fleetcast-Invoke-Ms": f"{self.invoke_ms:.1f}",
        }


@dataclass
class LoadReport:
    disk: str  # hit | miss
    download_ms: float
    load_ms: float


@dataclass
class _Transition:
    kind: str  # load | unload
    future: Future = field(default_factory=Future)
    # A load's waiting requests: the loader pins the model once for each the moment it is loaded, so no
    # other load can evict it before they are served (each then releases its pin as usual).
    waiters: int = 0
    loaded: bool = False  # the model is in the loaded set and its waiters are pinned


def _ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


class MultiModelEndpoint:
    def __init__(
        self,
        source: ModelSource,
        container: ContainerClient,
        cache_dir: Path,
        *,
        container_models_dir: str | None = None,
        policy: CachePolicy | None = None,
        endpoint_name: str = "fleetcast",
        model_ready_timeout_s: float = 60.0,
        load_threads: int = 4,
        manifest: ModelsPrefix | None = None,
    ) -> None:
        self.source = source
        self.manifest = manifest  # the models prefix, for the fleet manifest (customer_version)
        self.container = container
        self.policy = policy or CachePolicy()
        self.disk = DiskCache(cache_dir, source)
        # Where the container sees the cache root (the docker mount point, e.g. /opt/ml/models).
        self.container_models_dir = PurePosixPath(container_models_dir or str(self.disk.root))
        self.model_ready_timeout_s = model_ready_timeout_s
        self.log_stream_arn = (
            f"arn:aws:logs:local:000000000000:log-group:/aws/sagemaker/Endpoints/{endpoint_name}"
        )
        self._lock = threading.Lock()
        self._loaded = self.policy.loaded_lru()
        self._on_disk = self.policy.disk_lru()
        self._transitions: dict[str, _Transition] = {}
        self._targets: dict[str, str] = {}
        self.stats: Counter[str] = Counter()
        self._loader = ThreadPoolExecutor(max_workers=load_threads, thread_name_prefix="model-load")
        for name, size in self.disk.existing_entries():
            self._on_disk.add(name, size)

    # ----------------------------------------------------------------- public
    def invoke(
        self,
        target_model: str | None,
        body: bytes,
        headers: dict[str, str],
        timings: RequestTimings | None = None,
    ) -> tuple[ContainerResponse, RequestTimings]:
        """Invoke the TargetModel; `timings` (filled in as the request goes) is also valid after an error."""
        timings = timings if timings is not None else RequestTimings()
        timings.target_model = target_model or ""
        try:
            target = check_target_model(target_model)
        except InvalidTargetModelError as exc:
            raise ValidationError(str(exc)) from exc
        name = model_id(target)
        timings.model_name = name
        forwarded = {key: value for key, value in headers.items() if key.lower() in _FORWARDED_LOWER}
        for round_ in range(2):
            self._acquire(target, name, timings)
            try:
                start = time.perf_counter()
                response = self.container.invoke(name, body, forwarded)
                timings.invoke_ms = _ms_since(start)
            except ContainerUnavailableError as exc:
                raise ServiceUnavailableError(f"the model container is not answering: {exc}") from exc
            finally:
                self._release(name)
            if response.status == 404 and round_ == 0 and self._vanished(name):
                continue  # the container lost it (restarted?): load again once
            break
        timings.status = response.status
        if response.status >= 400:
            raise ModelError(response.status, response.text, self.log_stream_arn, "invoking the model")
        return response, timings

    def loaded_models(self) -> list[str]:
        """Loaded model ids, least recently used first (the endpoint's view)."""
        with self._lock:
            return self._loaded.keys()

    def customer_version(self, customer: str) -> ManifestEntry:
        """The fleet manifest's row for `customer`; LookupError when there is none (or no manifest)."""
        if self.manifest is None:
            raise LookupError("this endpoint was started without a models prefix holding a fleet manifest")
        try:
            found = resolve(self.manifest, MANIFEST_NAME, [safe_customer_id(customer)])
        except ManifestError as exc:
            raise LookupError(f"the fleet manifest cannot be read: {exc}") from exc
        if not found:
            raise LookupError(f"customer {clip(customer, 100)!r} has no model in the fleet manifest")
        return next(iter(found.values()))

    def target_of(self, model_name: str) -> str | None:
        with self._lock:
            return self._targets.get(model_name)

    def snapshot(self) -> dict[str, object]:
        with self._lock:
            return {
                "stats": dict(self.stats),
                "loaded": [self._targets.get(n, n) for n in self._loaded],
                "loaded_count": len(self._loaded),
                "disk_entries": len(self._on_disk),
                "disk_bytes": self._on_disk.total,
                "max_loaded": self.policy.max_loaded,
                "disk_cache_bytes": self.policy.disk_cache_bytes,
            }

    def close(self) -> None:
        self._loader.shutdown(wait=True, cancel_futures=True)

    # ------------------------------------------------------ loading the model
    def _acquire(self, target: str, name: str, timings: RequestTimings) -> None:
        """Return once `name` is loaded and pinned for this request (starting or joining its load)."""
        start = time.perf_counter()
        deadline = start + self.model_ready_timeout_s
        arrived_loaded = None
        for _ in range(MAX_ACQUIRE_ROUNDS):
            with self._lock:
                busy = self._transitions.get(name)
                loaded_now = busy is None or (busy.kind == "load" and busy.loaded)
                if loaded_now and name in self._loaded:
                    self._loaded.touch(name)
                    self._loaded.pin(name)
                    if arrived_loaded is None:
                        arrived_loaded = True
                    break
                arrived_loaded = arrived_loaded or False
                timings.cache = "miss"
                started_here = busy is None
                if busy is None:
                    busy = _Transition("load")
                    self._transitions[name] = busy
                    self._targets[name] = target
                    self._loader.submit(self._bring_in, target, name, busy)
                if busy.kind == "load":
                    busy.waiters += 1
            try:
                report = busy.future.result(timeout=max(0.0, deadline - time.perf_counter()))
            except FutureTimeout as exc:
                with self._lock:  # this request leaves: the pin it was given, or would be, is not wanted
                    if busy.loaded:
                        self._loaded.unpin(name)
                    elif busy.kind == "load":
                        busy.waiters -= 1
                raise ModelNotReadyError(
                    f"model {target!r} is still being downloaded or loaded after "
                    f"{self.model_ready_timeout_s:g} s; loading continues, retry the request"
                ) from exc
            if started_here and isinstance(report, LoadReport):
                timings.disk, timings.download_ms, timings.load_ms = (
                    report.disk,
                    report.download_ms,
                    report.load_ms,
                )
            if busy.kind == "load":  # loaded, and pinned for this request by the loader
                break
        else:
            raise ServiceUnavailableError(f"model {target!r} was evicted again before it could be invoked")
        timings.cache = "hit" if arrived_loaded else "miss"
        timings.load_wait_ms = 0.0 if arrived_loaded else _ms_since(start)

    def _release(self, name: str) -> None:
        with self._lock:
            self._loaded.unpin(name)
            # Pinned models may have pushed the count over --max-loaded; bring it back down now.
            victims = self._claim_for_unload(self._loaded.over_budget_victims())
        for victim in victims:
            reason = f"over --max-loaded {self.policy.max_loaded}"
            try:
                self._loader.submit(self._unload, victim, reason)
            except RuntimeError:  # shutting down: no loader threads left
                self._unload(victim, reason)

    def _bring_in(self, target: str, name: str, transition: _Transition) -> None:
        """Loader thread: download if needed, then load into the container; resolves `transition`."""
        try:
            report = self._download_and_load(target, name)
        except BaseException as exc:
            with self._lock:
                self._transitions.pop(name, None)
                if name not in self._on_disk:  # e.g. an unknown model: remember nothing about it
                    self._targets.pop(name, None)
            transition.future.set_exception(_as_endpoint_error(exc, target, self.source))
            return
        with self._lock:
            self._transitions.pop(name, None)
        transition.future.set_result(report)

    def _download_and_load(self, target: str, name: str) -> LoadReport:
        with self._lock:
            on_disk = name in self._on_disk
            if on_disk:
                self._on_disk.touch(name)
        download_ms = 0.0
        if not on_disk:
            start = time.perf_counter()
            download = self.disk.download(target, name)
            download_ms = _ms_since(start)
            with self._lock:
                self._on_disk.add(name, download.extracted_bytes)
                self.stats["downloads"] += 1
            log.info(
                "downloaded %s as %s: %d bytes, %d extracted, %.0f ms",
                self.source.uri(target),
                name,
                download.archive_bytes,
                download.extracted_bytes,
                download_ms,
            )
            self._trim_disk()
        start = time.perf_counter()
        self._load_into_container(target, name)
        return LoadReport(
            disk="hit" if on_disk else "miss", download_ms=download_ms, load_ms=_ms_since(start)
        )

    def _load_into_container(self, target: str, name: str) -> None:
        url = str(self.container_models_dir / name / "model")
        for _ in range(self.policy.max_load_attempts):
            with self._lock:
                victims = self._claim_for_unload(self._loaded.over_budget_victims(incoming_cost=1))
            for victim in victims:
                self._unload(victim, reason=f"over --max-loaded {self.policy.max_loaded}")
            try:
                response = self.container.load(name, url)
            except ContainerUnavailableError as exc:
                raise ServiceUnavailableError(f"the model container is not answering: {exc}") from exc
            if response.status in (200, 201, 409):
                with self._lock:
                    self._loaded.add(name)
                    self.stats["loads"] += 1
                    transition = self._transitions.get(name)
                    if transition is not None and transition.kind == "load":
                        for _ in range(transition.waiters):
                            self._loaded.pin(name)
                        transition.loaded = True
                if response.status == 409:
                    log.info("container already had %s (%s) loaded; adopting it", name, target)
                return
            if response.status != 507:
                raise ModelError(response.status, response.text, self.log_stream_arn, "loading the model")
            with self._lock:
                self.stats["container_507"] += 1
                victims = self._claim_for_unload(self._loaded.eviction_candidates()[:1])
            if not victims:
                raise ModelError(
                    507,
                    f"{response.text.strip()} (no other model is loaded that could be unloaded to make room)",
                    self.log_stream_arn,
                    "loading the model",
                )
            self._unload(victims[0], reason="the container answered 507 Insufficient Storage")
        raise ModelError(
            507,
            f"the container still had no room after {self.policy.max_load_attempts} attempts",
            self.log_stream_arn,
            "loading the model",
        )

    # ---------------------------------------------------------------- eviction
    def _claim_for_unload(self, candidates: list[str]) -> list[str]:
        """Under the lock: take loaded, idle models out of the LRU and mark them as unloading."""
        claimed = []
        for name in candidates:
            if name in self._transitions or self._loaded.is_pinned(name):
                continue
            self._loaded.remove(name)
            self._transitions[name] = _Transition("unload")
            claimed.append(name)
        return claimed

    def _unload(self, name: str, reason: str) -> None:
        """DELETE a model claimed by `_claim_for_unload`; always resolves its transition."""
        transition = self._transitions[name]
        ok = False
        try:
            response = self.container.unload(name)
            ok = response.status in (200, 202, 204, 404)
            if not ok:
                log.warning("DELETE /models/%s answered %d: %s", name, response.status, response.text[:200])
        except ContainerUnavailableError as exc:
            log.warning("could not unload %s: %s", name, exc)
        finally:
            with self._lock:
                self._transitions.pop(name, None)
                if ok:
                    self.stats["unloads"] += 1
                else:  # still loaded as far as we know: back in the LRU, to be tried again later
                    self._loaded.add(name)
                    self._loaded.touch(name)
            transition.future.set_result(None)
        if ok:
            log.info("unloaded %s (%s): %s", name, self.target_of(name) or "?", reason)
            self._trim_disk()

    def _trim_disk(self) -> None:
        """Delete least recently used disk entries over the budget; never one loaded or loading."""
        with self._lock:
            in_use = set(self._loaded.keys()) | set(self._transitions)
            victims = self._on_disk.over_budget_victims(exclude=in_use)
            for name in victims:
                self._on_disk.remove(name)
            over = self._on_disk.budget is not None and self._on_disk.total > self._on_disk.budget
        for name in victims:
            self.disk.remove(name)
            with self._lock:
                self.stats["disk_evictions"] += 1
            log.info("removed %s from the disk cache (over --disk-cache-mb)", name)
        if over:
            log.warning("disk cache is over budget: every remaining entry is loaded or loading")

    def _vanished(self, name: str) -> bool:
        """After a 404 from invoke: true if the container no longer has the model (then forget it)."""
        try:
            gone = self.container.describe(name).status == 404
        except ContainerUnavailableError:
            return False
        if gone:
            with self._lock:
                self._loaded.remove(name)
            log.warning("container no longer has %s loaded; loading it again", name)
        return gone


_FORWARDED_LOWER = frozenset(h.lower() for h in FORWARDED_HEADERS)


def _as_endpoint_error(exc: BaseException, target: str, source: ModelSource) -> BaseException:
    if isinstance(exc, EndpointError):
        return exc
    if isinstance(exc, ModelNotFoundError):
        return ValidationError(
            f"Failed to download model data for TargetModel {target!r}: {exc}. Check that the object exists "
            "below the endpoint's models prefix."
        )
    if isinstance(exc, InvalidTargetModelError):
        return ValidationError(str(exc))
    if isinstance(exc, UnsafeArchiveError):
        return ValidationError(f"model archive {source.uri(target)} was rejected: {exc}")
    log.exception("loading %s failed", target)
    return EndpointError(f"loading model {target!r} failed: {type(exc).__name__}: {exc}")
