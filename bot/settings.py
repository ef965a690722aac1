"""Klubb's configuration: one frozen dataclass, read from KLUBB_* (and TWILIO_*) variables."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

log = logging.getLogger(__name__)

# Only for the console gateway on a laptop: a Twilio deployment must set its own token.
DEV_AUTH_TOKEN = "klubb-dev-token"  # noqa: S105
DEFAULT_DATABASE = "sqlite+aiosqlite:///klubb.db"
# The Twilio REST gateway (for messages outside replies) arrives with the campaigns issue.
GATEWAYS = ("console",)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class SettingsError(ValueError):
    """A configuration variable is missing or wrong; the message names it."""


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = "http://127.0.0.1:8080"
    gateway: str = "console"
    console_outbox: Path | None = None
    twilio_account_sid: str | None = None
    twilio_auth_token: str = DEV_AUTH_TOKEN
    twilio_api_url: str = "https://api.twilio.com"
    run_scheduler: bool = True
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the environment; raise SettingsError naming the variable that is wrong."""
        # An empty variable means the same as an unset one.
        env = {k: v for k, v in (os.environ if env is None else env).items() if v.strip()}
        port = _int(env, "KLUBB_PORT", 8080)
        if not 1 <= port <= 65535:
            raise SettingsError(f"KLUBB_PORT must be between 1 and 65535, not {port}")
        log_level = env.get("KLUBB_LOG_LEVEL", "INFO").strip().upper()
        if log_level not in LOG_LEVELS:
            raise SettingsError(f"KLUBB_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}")
        gateway = env.get("KLUBB_GATEWAY", "console").strip().lower()
        if gateway not in GATEWAYS:
            raise SettingsError(f"KLUBB_GATEWAY must be one of {', '.join(GATEWAYS)}")
        token = env.get("TWILIO_AUTH_TOKEN", "").strip()
        if not token:
            token = DEV_AUTH_TOKEN
        outbox = env.get("KLUBB_CONSOLE_OUTBOX", "").strip()
        host = env.get("KLUBB_HOST", "127.0.0.1").strip()
        return cls(
            database_url=env.get("KLUBB_DATABASE_URL", DEFAULT_DATABASE).strip(),
            host=host,
            port=port,
            public_url=env.get("KLUBB_PUBLIC_URL", f"http://127.0.0.1:{port}").rstrip("/"),
            gateway=gateway,
            console_outbox=Path(outbox) if outbox else None,
            twilio_account_sid=env.get("TWILIO_ACCOUNT_SID") or None,
            twilio_auth_token=token,
            twilio_api_url=env.get("TWILIO_API_URL", "https://api.twilio.com").rstrip("/"),
            run_scheduler=env.get("KLUBB_SCHEDULER", "on").strip().lower() not in ("off", "0"),
            log_level=log_level,
        )

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, not {raw!r}") from None
