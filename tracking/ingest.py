"""The ingest path: authenticate a device, read its upload, evaluate each fix against the
device's own zones, and hand the fixes to the device's Redis script in one round trip.

Nothing here talks to PostgreSQL. The reply is sent only after the script has put every
accepted fix on the shard's ping stream (and any alert on its alert stream) atomically with
the state change, so a 202 means queued, and a failure means nothing of the upload counted:
the device sends it again and duplicates are dropped by sequence number.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import structlog

from casemgr.crypto import Keyring, SealError
from casemgr.errors import (
    BadRequest,
    FieldError,
    Forbidden,
    PayloadTooLarge,
    ServiceUnavailable,
    TooManyRequests,
    Unauthenticated,
    UnsupportedMediaType,
    ValidationFailed,
)
from casemgr.ratelimit import NO_LIMIT, Limit, RateLimiter
from casemgr.redis_client import RedisClient
from tracking.contract import DeviceConfig, secret_associated_data
from tracking.device_cache import DeviceCache
from tracking.geometry import METRES_PER_DEGREE
from tracking.keys import KeySpace
from tracking.publishing import script_fields
from tracking.script_pipe import ScriptPipe
from tracking.scripts import Scripts
from tracking.wire import IngestReply, Ping, RejectedPing
from tracking.zones import CompiledDevice

log = structlog.get_logger(__name__)

_DEVICE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
JSON_TYPES = frozenset({"application/json"})
MSGPACK_TYPES = frozenset({"application/msgpack", "application/x-msgpack", "application/vnd.msgpack"})
# A device without an active order is looked up again after this long: an order may start.
_UNASSIGNED_TTL_S = 1.0

_json_batch = msgspec.json.Decoder(list[Ping])
_json_one = msgspec.json.Decoder(Ping)
_json_items = msgspec.json.Decoder(list[msgspec.Raw])
_msgpack_batch = msgspec.msgpack.Decoder(list[Ping])
_msgpack_one = msgspec.msgpack.Decoder(Ping)
_msgpack_items = msgspec.msgpack.Decoder(list[msgspec.Raw])
_encode = msgspec.msgpack.Encoder().encode
_config_decoder = msgspec.msgpack.Decoder(DeviceConfig)


class _CrossingCheck(msgspec.Struct, array_like=True):
    """What the ingest script returns for a device with exclusion zones: the sequence numbers
    of the fixes it applied, and the last valid fix before them as [t, lon, lat, seq] (no seq
    in a state written before it was kept)."""

    applied: list[int]
    previous: list[float] | None = None


_crossing_decoder = msgspec.msgpack.Decoder(_CrossingCheck)


def _reason(error: msgspec.ValidationError) -> str:
    # msgspec says "... - at `$[3].latitude`" or "- at `$.latitude`"; the index is ours to give.
    return re.sub(r" - at `\$(\[\d+\])?\.?", " - at `", str(error)).replace("at ``", "at the top level")


class _ScriptCall(msgspec.Struct, frozen=True, gc=False):
    """The ingest script's call before its last argument, for redis-py (a Redis Cluster)."""

    keys: tuple[str, ...]
    args: tuple[Any, ...]


class _Entry(msgspec.Struct, frozen=True, gc=False):
    device: CompiledDevice
    # The ingest script's call before the fixes: the device's keys, the version, the
    # configuration's fields as published (the script takes them from here rather than from
    # Redis once it has checked the version) and the uploads allowed per minute. Packed once per
    # version for the script pipe (ScriptPipe.packed), else for redis-py.
    call: bytes | _ScriptCall
    shard: int
    loaded_at: float


@dataclass(slots=True)
class Ingest:
    redis: RedisClient
    scripts: Scripts
    keyring: Keyring
    keyspace: KeySpace
    max_batch: int = 1000
    future_tolerance_ms: int = 120_000
    cache_size: int = 200_000
    # Backpressure: queued uploads per shard's ping stream before ingest answers 503 (0: no bound).
    max_backlog: int = 0
    # How stale the worker's view of the backlog may be: one pipelined XLEN of every shard's
    # stream this often, instead of one more Redis command in every upload's script.
    backlog_refresh_s: float = 0.25
    # Uploads a device may make per minute before ingest answers 429 (0: any number).
    device_uploads_per_minute: int = 0
    # Refused authentications per source address, counted in Redis for every worker; past the
    # limit the address gets 429 until the window ends, from this worker without asking Redis.
    rate_limiter: RateLimiter | None = None
    failed_auth_limit: Limit = NO_LIMIT
    _blocked: dict[str, float] = field(default_factory=dict)
    _full_shards: frozenset[int] = frozenset()
    _backlog_read_at: float = float("-inf")
    now_ms: Callable[[], int] = field(default=lambda: int(time.time() * 1000))
    # On a single Redis server the ingest script goes through this pipelined channel.
    pipe: ScriptPipe | None = None
    _cache: DeviceCache[_Entry] = field(init=False)

    def __post_init__(self) -> None:
        self._cache = DeviceCache(self.cache_size)

    async def upload(
        self,
        *,
        device_id: str | None,
        authorization: str | None,
        signature: str | None,
        content_type: str,
        body: bytes,
        address: str = "",
    ) -> IngestReply:
        blocked_until = self._blocked.get(address)
        if blocked_until is not None:
            if blocked_until > time.monotonic():
                raise TooManyRequests(
                    "too many refused authentications from this address; wait before sending again",
                    retry_after_s=math.ceil(blocked_until - time.monotonic()),
                    reason="address_rate_limited",
                )
            del self._blocked[address]
        try:
            return await self._upload(device_id, authorization, signature, content_type, body)
        except Unauthenticated:
            await self._count_refusal(address)
            raise

    async def _read_backlog(self) -> None:
        """Which shards' ping streams hold max_backlog entries or more (XLEN counts acknowledged
        entries until they are trimmed, within seconds)."""
        self._backlog_read_at = time.monotonic()
        shards = self.keyspace.all_shards()
        pipe = self.redis.pipeline(transaction=False)
        for shard in shards:
            pipe.xlen(shard.pings)
        lengths = await pipe.execute()
        self._full_shards = frozenset(
            shard.shard for shard, length in zip(shards, lengths, strict=True) if length >= self.max_backlog
        )

    async def _count_refusal(self, address: str) -> None:
        if self.rate_limiter is None or not address:
            return
        try:
            await self.rate_limiter.hit((self.failed_auth_limit, address))
        except TooManyRequests as e:
            if len(self._blocked) > 100_000:  # many addresses at once: forget, Redis still counts
                self._blocked.clear()
            self._blocked[address] = time.monotonic() + e.retry_after_s
            raise

    async def _upload(
        self,
        device_id: str | None,
        authorization: str | None,
        signature: str | None,
        content_type: str,
        body: bytes,
    ) -> IngestReply:
        if not device_id or not _DEVICE_ID.match(device_id):
            raise Unauthenticated("the X-Device-Id header is missing or malformed", reason="no_device_id")
        entry = await self._entry(device_id)
        now = self.now_ms()
        self._admit(entry.device, authorization, signature, body, now)
        pings, rejected = self._decode(body, content_type)
        for _ in range(3):  # a new configuration version mid-request: evaluate again with it
            device = entry.device
            fixes, evidence, rejected_now = self._fixes(device, device_id, pings, now)
            if not fixes:
                raise ValidationFailed(
                    "no ping of the upload could be accepted",
                    errors=[
                        FieldError(field=f"[{r.index}]", message=r.reason) for r in rejected + rejected_now
                    ],
                )
            if self.max_backlog:
                if time.monotonic() - self._backlog_read_at >= self.backlog_refresh_s:
                    await self._read_backlog()
                if entry.shard in self._full_shards:
                    raise ServiceUnavailable(
                        "the ping queue is over its bound: keep the pings and send them again shortly",
                        reason="backlog_full",
                    )
            call = entry.call
            if isinstance(call, bytes):
                assert self.pipe is not None
                result = await self.pipe.evalsha_packed(self.scripts.ingest, call, _encode(fixes))
            else:
                result = await self.scripts.ingest(keys=call.keys, args=[*call.args, _encode(fixes)])
            status = result[0]
            if status == b"ok":
                break
            if status == b"stale":
                # A device removed since leaves a version and no configuration: unknown now.
                blob = result[1] if len(result) > 1 and result[1] else None
                entry = self._install(device_id, bytes(blob) if blob else None)
                self._admit(entry.device, authorization, signature, body, now)
                continue
            if status == b"limited":
                raise TooManyRequests(
                    f"more than {self.device_uploads_per_minute} uploads from this device in a minute",
                    retry_after_s=math.ceil(int(result[1]) / 1000),
                    reason="device_rate_limited",
                )
            self._cache.forget(device_id)
            if status == b"no_order":
                raise Forbidden("the device has no active monitoring order", reason="no_active_order")
            raise Unauthenticated("unknown device", reason="unknown_device")
        else:  # pragma: no cover - three configuration changes within one upload
            raise BadRequest("the device's configuration changed while the upload was read; send it again")
        if device.exclusion:
            check = _crossing_decoder.decode(result[4])
            await self._crossings(device_id, device, fixes, evidence, check.previous, check.applied)
        return IngestReply(
            accepted=int(result[1]), duplicate=int(result[2]), rejected=rejected + rejected_now
        )

    async def _entry(self, device_id: str) -> _Entry:
        entry = self._cache.get(device_id)
        if entry is not None and (
            entry.device.order_id is not None or time.monotonic() - entry.loaded_at < _UNASSIGNED_TTL_S
        ):
            return entry
        keys = self.keyspace.device(device_id)
        blob = await (self.pipe.get(keys.blob) if self.pipe is not None else self.redis.get(keys.blob))
        if blob is None:
            self._cache.forget(device_id)
            raise Unauthenticated("unknown device", reason="unknown_device")
        return self._install(device_id, blob if isinstance(blob, bytes) else blob.encode())

    def _install(self, device_id: str, blob: bytes | None) -> _Entry:
        if not blob:
            self._cache.forget(device_id)
            raise Unauthenticated("unknown device", reason="unknown_device")
        config = _config_decoder.decode(blob)
        device = CompiledDevice.of(
            config, self.keyring.open(config.secret, secret_associated_data(device_id))
        )
        device_keys = self.keyspace.device(device_id)
        keys = device_keys.all()
        args = (config.version, _encode(script_fields(config)), self.device_uploads_per_minute)
        call = (
            ScriptPipe.packed(self.scripts.ingest, keys, args)
            if self.pipe is not None
            else _ScriptCall(tuple(keys), args)
        )
        entry = _Entry(device, call, device_keys.shard.shard, time.monotonic())
        self._cache.put(device_id, entry)
        return entry

    async def preload(self, chunk: int = 1000) -> int:
        """Load every published configuration, up to the cache's size, so that after a start
        every device's next upload takes one round trip instead of two. Returns how many."""
        pattern = f"{self.keyspace.namespace}:*:blob:*"
        keys: list[str] = []
        loaded = 0
        async for key in self.redis.scan_iter(match=pattern, count=10_000):
            keys.append(key.decode() if isinstance(key, bytes) else key)
            if len(keys) >= chunk:
                loaded += await self._preload_chunk(keys)
                keys = []
                if len(self._cache) >= self.cache_size:
                    return loaded
        return loaded + (await self._preload_chunk(keys) if keys else 0)

    async def _preload_chunk(self, keys: list[str]) -> int:
        pipeline = self.redis.pipeline(transaction=False)
        for key in keys:
            pipeline.get(key)
        loaded = 0
        for key, blob in zip(keys, await pipeline.execute(), strict=True):
            device_id = key.rsplit(":blob:", 1)[1]
            if blob and self._cache.get(device_id) is None and len(self._cache) < self.cache_size:
                try:
                    self._install(device_id, blob if isinstance(blob, bytes) else blob.encode())
                except (msgspec.DecodeError, msgspec.ValidationError, SealError) as e:
                    # The device's own upload will say so; one bad configuration stops no other.
                    log.warning("tracking_preload_skipped", device_id=device_id, reason=str(e))
                    continue
                loaded += 1
        return loaded

    @classmethod
    def _admit(
        cls, device: CompiledDevice, authorization: str | None, signature: str | None, body: bytes, now: int
    ) -> None:
        """The device's own credentials, then an order in force now (the script checks the order
        again, with Redis's clock)."""
        cls._authenticate(device, authorization, signature, body)
        if device.order_id is None or not device.starts_at_ms <= now < device.ends_at_ms:
            raise Forbidden("the device has no active monitoring order", reason="no_active_order")

    @staticmethod
    def _authenticate(
        device: CompiledDevice, authorization: str | None, signature: str | None, body: bytes
    ) -> None:
        if signature:
            given = signature.strip().lower().removeprefix("sha256=")
            expected = hmac.new(device.secret, body, hashlib.sha256).hexdigest()
            if not hmac.compare_digest(given.encode(), expected.encode()):
                raise Unauthenticated(
                    "the body's signature does not match the device's secret", reason="bad_signature"
                )
            return
        if authorization and authorization[:7].lower() == "bearer ":
            if not hmac.compare_digest(authorization[7:].strip().encode(), device.secret):
                raise Unauthenticated("wrong device secret", reason="bad_secret")
            return
        raise Unauthenticated(
            "no device credentials: send Authorization: Bearer <secret>, "
            "or X-Signature: <hex HMAC-SHA256 of the body>",
            reason="no_credentials",
        )

    def _decode(self, body: bytes, content_type: str) -> tuple[list[tuple[int, Ping]], list[RejectedPing]]:
        media_type = content_type.split(";", 1)[0].strip().lower()
        batch: Any
        one: Any
        items: Any
        if media_type in JSON_TYPES:
            batch, one, items, is_batch = _json_batch, _json_one, _json_items, body.lstrip()[:1] == b"["
        elif media_type in MSGPACK_TYPES:
            first = body[:1]
            is_batch = bool(first) and (0x90 <= first[0] <= 0x9F or first[0] in (0xDC, 0xDD))
            batch, one, items = _msgpack_batch, _msgpack_one, _msgpack_items
        else:
            raise UnsupportedMediaType("send application/json or application/msgpack")
        decoder: Any = batch if is_batch else one
        try:
            decoded = decoder.decode(body)
        except msgspec.ValidationError as e:
            if not is_batch:
                raise ValidationFailed(_reason(e), field=_field_of(e)) from None
            return self._decode_each(items, body, one)
        except (msgspec.DecodeError, UnicodeDecodeError):
            # msgspec's MessagePack decoder lets a string that is not UTF-8 through as
            # UnicodeDecodeError (found by tests/tracking/test_ping_fuzz.py).
            raise BadRequest("the body is not valid JSON or MessagePack for its Content-Type") from None
        pings = decoded if is_batch else [decoded]
        self._check_size(len(pings))
        return list(enumerate(pings)), []

    def _decode_each(
        self, items: Any, body: bytes, one: Any
    ) -> tuple[list[tuple[int, Ping]], list[RejectedPing]]:
        try:
            raws = items.decode(body)
        except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError):
            raise BadRequest("the body is not valid JSON or MessagePack for its Content-Type") from None
        self._check_size(len(raws))
        good: list[tuple[int, Ping]] = []
        bad: list[RejectedPing] = []
        for index, raw in enumerate(raws):
            try:
                good.append((index, one.decode(raw)))
            except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError) as e:
                bad.append(
                    RejectedPing(
                        index=index, reason=_reason(e) if isinstance(e, msgspec.ValidationError) else str(e)
                    )
                )
        return good, bad

    def _check_size(self, count: int) -> None:
        if count > self.max_batch:
            raise PayloadTooLarge(f"a batch holds at most {self.max_batch} pings, this one {count}")
        if count == 0:
            raise ValidationFailed("the batch is empty", field="body")

    def _fixes(
        self, device: CompiledDevice, device_id: str, pings: list[tuple[int, Ping]], now: int
    ) -> tuple[list[list[Any]], dict[int, str | None], list[RejectedPing]]:
        """The accepted pings as the script's fixes, sorted by fix time; the evidence per seq."""
        latest_allowed = now + self.future_tolerance_ms
        rows: list[list[Any]] = []
        evidence: dict[int, str | None] = {}
        rejected: list[RejectedPing] = []
        for index, ping in pings:
            reason = None
            t_ms = int(ping.fix_time.timestamp() * 1000)
            lat, lon, accuracy = ping.latitude, ping.longitude, ping.accuracy_m
            if ping.device_id != device_id:
                reason = "device_id differs from the authenticated device"
            elif (lat is None) != (lon is None):
                reason = "latitude and longitude go together: send both or neither"
            elif lat is not None and accuracy is None:
                reason = "accuracy_m is required with a position"
            elif t_ms > latest_allowed:
                reason = "fix_time is in the future"
            elif t_ms < device.starts_at_ms:
                reason = "fix_time is before the monitoring order started"
            elif t_ms >= device.ends_at_ms:
                reason = "fix_time is after the monitoring order ended"
            if reason is not None:
                rejected.append(RejectedPing(index=index, reason=reason))
                continue
            marks = device.evidence(lon, lat, accuracy or 0.0, t_ms)
            evidence[ping.seq] = marks
            rows.append(
                [
                    ping.seq,
                    t_ms,
                    False if lon is None else lon,
                    False if lat is None else lat,
                    False if accuracy is None else accuracy,
                    False if ping.speed_mps is None else ping.speed_mps,
                    False if ping.battery_percent is None else ping.battery_percent,
                    ping.strap_state,
                    ping.case_state,
                    False if marks is None else marks,
                ]
            )
        rows.sort(key=lambda row: (row[1], row[0]))
        return rows, evidence, rejected

    async def _crossings(
        self,
        device_id: str,
        device: CompiledDevice,
        fixes: list[list[Any]],
        evidence: dict[int, str | None],
        previous: list[float] | None,
        applied: list[int],
    ) -> None:
        """Sparse fixes can jump across a small exclusion zone: test the straight path between
        consecutive applied fixes, from the last valid fix before this upload on. Rare, so it
        may cost a second round trip."""
        by_seq = {row[0]: row for row in fixes}
        # The previous fix's marks are worked out only if a step could cross at all: most
        # steps are shorter than the band around every exclusion zone, whatever they were.
        path: list[tuple[int, int, float, float, float, str | None]] = []
        if previous:
            # [t, lon, lat, seq]; a state written before the sequence number was kept has none.
            seq_a = int(previous[3]) if len(previous) > 3 else -1
            path.append((seq_a, int(previous[0]), float(previous[1]), float(previous[2]), 0.0, None))
        for seq in applied:
            fix_marks = evidence.get(seq)
            if fix_marks is not None:
                row = by_seq[seq]
                path.append((seq, row[1], row[2], row[3], row[4], fix_marks))
        cap = device.thresholds.accuracy_cap_m
        metres_per_lon = METRES_PER_DEGREE * math.cos(math.radians(path[0][3])) if path else 0.0
        for a, b in itertools.pairwise(path):
            seq_a, t_a, lon_a, lat_a, accuracy_a, marks_a = a
            seq_b, t_b, lon_b, lat_b, accuracy_b, marks_b = b
            assert marks_b is not None  # only the previous fix's are worked out late
            step = math.hypot((lon_b - lon_a) * metres_per_lon, (lat_b - lat_a) * METRES_PER_DEGREE)
            for i in device.exclusion:
                mark_b = marks_b[i]
                if mark_b != "O" and mark_b != "-":
                    continue  # inside (the state machine speaks for it), or not in force
                zone = device.zones[i]
                # From beyond the band on one side to beyond it on the other, through the zone, is
                # at least both distances to the boundary: most steps are too short to cross.
                reach = zone.buffer_m + min(accuracy_b, cap) if mark_b == "O" else 0.0
                if step <= reach * 0.99:
                    continue
                if marks_a is None:
                    marks_a = device.evidence(lon_a, lat_a, 0.0, t_a) or ""
                mark_a = marks_a[i]
                if mark_a in "Ii":
                    continue
                if mark_a in "Oo":
                    reach += zone.buffer_m + min(accuracy_a, cap)
                if step <= reach * 0.99 or not zone.shape.segment_enters((lon_a, lat_a), (lon_b, lat_b)):
                    continue
                raised = await self.scripts.cross(
                    keys=self.keyspace.device(device_id).all(),
                    args=[device.version, zone.id, f"{seq_a if seq_a >= 0 else ''},{seq_b}", seq_b, t_b],
                )
                if raised:
                    log.info("exclusion_zone_crossed", order_id=device.order_id, zone_id=zone.id)


def _field_of(error: msgspec.ValidationError) -> str:
    message = str(error)
    named = re.search(r"(?:unknown|missing required) field `([^`]+)`", message)
    if named:
        return named.group(1)
    match = re.search(r"at `\$\.?([^`]*)`", message)
    return match.group(1) if match and match.group(1) else "body"
