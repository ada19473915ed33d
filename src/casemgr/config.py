"""Settings, read from the environment once at start-up into one frozen object.

Nothing else in the code base reads ``os.environ``: everything that can be configured is a
field here, with its environment variable named in the README.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from typing import Literal
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

Environment = Literal["production", "development", "demo", "test"]

APP_DB_ROLE = "casemgr_app"
TRACKING_DB_ROLE = "casemgr_tracking"


class ConfigError(Exception):
    """The environment does not describe a configuration we can run with."""


class DataKey(msgspec.Struct, frozen=True, kw_only=True):
    key_id: str
    key: bytes


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    env: Environment = "production"
    # The owner's connection: migrations and command-line administration only.
    database_url: str
    # The application's connection, as casemgr_app (no table ownership, no BYPASSRLS).
    app_database_url: str
    redis_url: str
    # REDIS_URL names one node of a Redis Cluster; the client discovers the others.
    redis_cluster: bool = False
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    db_pool_min: int = 2
    db_pool_max: int = 10
    mfa_required: bool = True
    # The console's session cookie carries Secure (sent over HTTPS only). Browsers refuse a Secure
    # cookie from a plain-HTTP page, even on localhost: the demo and development turn it off.
    console_cookie_secure: bool = True
    # A tile server for the console's maps ({z}/{x}/{y} URL template); empty: zones and tracks
    # are drawn without a background, so the map works with no network beyond this service.
    console_tile_url: str = ""
    # The time zone the console shows times in and reads typed times in (the bureau's).
    console_time_zone: str = "Asia/Shanghai"
    totp_issuer: str = "casemgr"
    session_idle_seconds: int = 30 * 60
    session_absolute_seconds: int = 12 * 60 * 60
    # A session that has passed the password but not yet the second factor.
    pending_session_seconds: int = 5 * 60
    login_max_failures: int = 5
    # Rate limits, shared by every worker through Redis (0: none). A source address is the
    # connection's peer, or what a trusted proxy says (uvicorn's --forwarded-allow-ips).
    rate_limit_per_address_per_minute: int = 1200
    rate_limit_per_account_per_minute: int = 600
    rate_limit_logins_per_address_per_minute: int = 30
    # Device uploads refused for a wrong secret or an unknown device, per source address, before
    # the ingest refuses that address outright for the rest of the minute.
    tracking_failed_auth_per_address_per_minute: int = 60
    login_failure_window_seconds: int = 15 * 60
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 64 * 1024
    argon2_parallelism: int = 2
    # AES-GCM keys for values sealed in the application; the first one seals new values.
    data_keys: tuple[DataKey, ...]
    max_body_bytes: int = 1024 * 1024
    log_format: Literal["json", "console"] = "json"
    log_level: str = "INFO"
    shutdown_grace_seconds: int = 20
    # The due-task engine: how often it runs in each worker (0: never; use `casemgr tasks
    # run` from cron instead), and how long a task stays overdue before it escalates.
    task_engine_interval_seconds: int = 300
    task_escalate_after_hours: int = 72
    # The tracking core (tracking/). Devices are spread over this many Redis shards; every
    # process of the service must agree on the number, and changing it needs `casemgr
    # tracking sync` while ingest is stopped.
    tracking_shards: int = 64
    # The prefix of every tracking key in Redis (two deployments may share one Redis).
    tracking_namespace: str = "trk"
    # How often each worker republishes device configurations a request could not publish.
    tracking_outbox_interval_seconds: int = 5
    # How often each worker escalates alerts nobody acknowledged in time (0: never).
    alert_escalation_interval_seconds: int = 30
    # How often each worker delivers queued notifications (0: never).
    notification_interval_seconds: int = 5
    # The SMS gateway: "log" (development), or "package.module:factory" (see notifications/sms.py).
    sms_sender: str = "log"
    tracking_host: str = "127.0.0.1"
    tracking_port: int = 8100
    tracking_workers: int = 1
    # The tracking core's own database role: it may insert pings and alerts, and read nothing.
    tracking_database_url: str = ""
    tracking_max_batch: int = 1000
    # A fix time this far ahead of the server's clock is refused (device clocks drift).
    tracking_future_tolerance_seconds: int = 120
    # Compiled device configurations each ingest worker keeps in memory (about 2 KB each; size
    # it to the fleet so that every upload takes one Redis round trip, not two).
    tracking_device_cache: int = 200_000
    # Whether each ingest worker loads every published configuration (up to the cache size)
    # when it starts, and reports not ready until it has.
    tracking_preload: bool = True
    # Backpressure: uploads queued on one shard's ping stream (of tracking_shards) before ingest
    # answers 503 with Retry-After; devices keep their pings and send them again. Size it from
    # Redis's memory: a queued upload takes about 150 bytes plus 40 per ping.
    tracking_max_backlog: int = 20_000
    # Uploads one device may make per minute before ingest answers 429 (a device reports every
    # interval, and resends what was refused).
    tracking_device_uploads_per_minute: int = 120
    # Retention (`casemgr retention run`): the ping history of an order is purged this long after
    # the order ended; the people of closed cases are anonymised this long after their last case
    # closed. The domain sets no figure; these are the bureau's to decide.
    retention_ping_days: int = 180
    retention_closed_case_days: int = 1825
    # A stream entry taken by a consumer that has not acknowledged it for this long (the
    # consumer died) is taken over by another. Longer than a batch takes to write.
    tracking_reclaim_idle_seconds: int = 30

    @property
    def is_production(self) -> bool:
        return self.env == "production"


def _flag(value: str, name: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be true or false, got {value!r}")


def _int(value: str, name: str, minimum: int = 0) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {value!r}") from None
    if number < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {number}")
    return number


def parse_data_keys(value: str) -> tuple[DataKey, ...]:
    """Parse ``kid:base64key[,kid:base64key...]``; each key is 32 bytes (AES-256)."""
    keys: list[DataKey] = []
    for item in filter(None, (part.strip() for part in value.split(","))):
        key_id, sep, encoded = item.partition(":")
        if not sep or not key_id.isalnum() or len(key_id) > 16:
            raise ConfigError("CASEMGR_DATA_KEYS entries look like kid:base64key (kid alphanumeric)")
        try:
            key = base64.b64decode(encoded, validate=True)
        except ValueError:
            raise ConfigError(f"CASEMGR_DATA_KEYS key {key_id!r} is not valid base64") from None
        if len(key) != 32:
            raise ConfigError(f"CASEMGR_DATA_KEYS key {key_id!r} must be 32 bytes")
        keys.append(DataKey(key_id=key_id, key=key))
    if len({k.key_id for k in keys}) != len(keys):
        raise ConfigError("CASEMGR_DATA_KEYS has a key id twice")
    return tuple(keys)


def app_url_from_owner_url(owner_url: str, role: str = APP_DB_ROLE) -> str:
    """The owner's URL with the user replaced by a service role (trust or peer auth)."""
    parts = urlsplit(owner_url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{role}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ

    def get(name: str, default: str | None = None) -> str | None:
        value = env.get(name)
        return value if value not in (None, "") else default

    environment = get("CASEMGR_ENV", "production")
    if environment not in ("production", "development", "demo", "test"):
        raise ConfigError(f"CASEMGR_ENV must be production, development, demo or test, got {environment!r}")
    database_url = get("DATABASE_URL")
    if database_url is None:
        raise ConfigError("DATABASE_URL is not set")
    redis_url = get("REDIS_URL")
    if redis_url is None:
        raise ConfigError("REDIS_URL is not set")
    data_keys = parse_data_keys(get("CASEMGR_DATA_KEYS", "") or "")
    if not data_keys:
        raise ConfigError("CASEMGR_DATA_KEYS is not set (kid:base64 of 32 random bytes)")
    mfa_required = _flag(get("CASEMGR_MFA_REQUIRED", "true") or "true", "CASEMGR_MFA_REQUIRED")
    if not mfa_required and environment == "production":
        raise ConfigError(
            "CASEMGR_MFA_REQUIRED=false is allowed only with CASEMGR_ENV=demo, development or test"
        )

    console_cookie_secure = _flag(
        get("CASEMGR_CONSOLE_COOKIE_SECURE", "true") or "true", "CASEMGR_CONSOLE_COOKIE_SECURE"
    )
    if not console_cookie_secure and environment == "production":
        raise ConfigError(
            "CASEMGR_CONSOLE_COOKIE_SECURE=false is allowed only with CASEMGR_ENV=demo, development or test"
        )
    redis_cluster = _flag(get("CASEMGR_REDIS_CLUSTER", "false") or "false", "CASEMGR_REDIS_CLUSTER")
    tracking_preload = _flag(get("CASEMGR_TRACKING_PRELOAD", "true") or "true", "CASEMGR_TRACKING_PRELOAD")

    values: dict[str, object] = {
        "redis_cluster": redis_cluster,
        "tracking_preload": tracking_preload,
        "env": environment,
        "database_url": database_url,
        "app_database_url": get("APP_DATABASE_URL") or app_url_from_owner_url(database_url, APP_DB_ROLE),
        "tracking_database_url": get("TRACKING_DATABASE_URL")
        or app_url_from_owner_url(database_url, TRACKING_DB_ROLE),
        "redis_url": redis_url,
        "data_keys": data_keys,
        "mfa_required": mfa_required,
        "console_cookie_secure": console_cookie_secure,
    }
    integers = {
        "port": ("CASEMGR_PORT", 1),
        "workers": ("CASEMGR_WORKERS", 1),
        "db_pool_min": ("CASEMGR_DB_POOL_MIN", 0),
        "db_pool_max": ("CASEMGR_DB_POOL_MAX", 1),
        "session_idle_seconds": ("CASEMGR_SESSION_IDLE_SECONDS", 1),
        "session_absolute_seconds": ("CASEMGR_SESSION_ABSOLUTE_SECONDS", 1),
        "login_max_failures": ("CASEMGR_LOGIN_MAX_FAILURES", 1),
        "rate_limit_per_address_per_minute": ("CASEMGR_RATE_LIMIT_PER_ADDRESS_PER_MINUTE", 0),
        "rate_limit_per_account_per_minute": ("CASEMGR_RATE_LIMIT_PER_ACCOUNT_PER_MINUTE", 0),
        "rate_limit_logins_per_address_per_minute": ("CASEMGR_RATE_LIMIT_LOGINS_PER_ADDRESS_PER_MINUTE", 0),
        "tracking_failed_auth_per_address_per_minute": (
            "CASEMGR_TRACKING_FAILED_AUTH_PER_ADDRESS_PER_MINUTE",
            0,
        ),
        "login_failure_window_seconds": ("CASEMGR_LOGIN_FAILURE_WINDOW_SECONDS", 1),
        "argon2_time_cost": ("CASEMGR_ARGON2_TIME_COST", 1),
        "argon2_memory_kib": ("CASEMGR_ARGON2_MEMORY_KIB", 8),
        "max_body_bytes": ("CASEMGR_MAX_BODY_BYTES", 1024),
        "shutdown_grace_seconds": ("CASEMGR_SHUTDOWN_GRACE_SECONDS", 0),
        "task_engine_interval_seconds": ("CASEMGR_TASK_ENGINE_INTERVAL_SECONDS", 0),
        "task_escalate_after_hours": ("CASEMGR_TASK_ESCALATE_AFTER_HOURS", 1),
        "tracking_shards": ("CASEMGR_TRACKING_SHARDS", 1),
        "tracking_port": ("CASEMGR_TRACKING_PORT", 1),
        "tracking_workers": ("CASEMGR_TRACKING_WORKERS", 1),
        "tracking_max_batch": ("CASEMGR_TRACKING_MAX_BATCH", 1),
        "tracking_future_tolerance_seconds": ("CASEMGR_TRACKING_FUTURE_TOLERANCE_SECONDS", 0),
        "tracking_device_cache": ("CASEMGR_TRACKING_DEVICE_CACHE", 1),
        "tracking_max_backlog": ("CASEMGR_TRACKING_MAX_BACKLOG", 0),
        "tracking_device_uploads_per_minute": ("CASEMGR_TRACKING_DEVICE_UPLOADS_PER_MINUTE", 0),
        "tracking_reclaim_idle_seconds": ("CASEMGR_TRACKING_RECLAIM_IDLE_SECONDS", 1),
        "retention_ping_days": ("CASEMGR_RETENTION_PING_DAYS", 1),
        "retention_closed_case_days": ("CASEMGR_RETENTION_CLOSED_CASE_DAYS", 1),
        "tracking_outbox_interval_seconds": ("CASEMGR_TRACKING_OUTBOX_INTERVAL_SECONDS", 0),
        "alert_escalation_interval_seconds": ("CASEMGR_ALERT_ESCALATION_INTERVAL_SECONDS", 0),
        "notification_interval_seconds": ("CASEMGR_NOTIFICATION_INTERVAL_SECONDS", 0),
    }
    for field, (name, minimum) in integers.items():
        raw = get(name)
        if raw is not None:
            values[field] = _int(raw, name, minimum)
    for field, name in (
        ("host", "CASEMGR_HOST"),
        ("totp_issuer", "CASEMGR_TOTP_ISSUER"),
        ("log_level", "CASEMGR_LOG_LEVEL"),
        ("tracking_host", "CASEMGR_TRACKING_HOST"),
        ("tracking_namespace", "CASEMGR_TRACKING_NAMESPACE"),
        ("console_tile_url", "CASEMGR_CONSOLE_TILE_URL"),
        ("console_time_zone", "CASEMGR_CONSOLE_TIME_ZONE"),
        ("sms_sender", "CASEMGR_SMS_SENDER"),
    ):
        raw = get(name)
        if raw is not None:
            values[field] = raw
    log_format = get("CASEMGR_LOG_FORMAT", "json" if environment == "production" else "console")
    if log_format not in ("json", "console"):
        raise ConfigError(f"CASEMGR_LOG_FORMAT must be json or console, got {log_format!r}")
    values["log_format"] = log_format
    try:
        settings = msgspec.convert(values, Settings)
    except msgspec.ValidationError as e:
        raise ConfigError(str(e)) from None
    try:
        ZoneInfo(settings.console_time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"CASEMGR_CONSOLE_TIME_ZONE is not a time zone: {settings.console_time_zone!r}"
        ) from None
    return settings
