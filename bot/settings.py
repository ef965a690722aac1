"""Klubb's configuration: one frozen dataclass, read from KLUBB_* (and TWILIO_*) variables."""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

from store.database import UnsupportedDatabase, database_url, shown_url

log = logging.getLogger(__name__)

# Only for the console gateway on a laptop: a Twilio deployment must set its own token.
DEV_AUTH_TOKEN = "klubb-dev-token"  # noqa: S105
DEFAULT_DATABASE = "sqlite+aiosqlite:///klubb.db"
# Where messages outside replies go: "console" writes them to a file or the log (a laptop),
# "twilio" sends them through Twilio's REST API (TWILIO_API_URL may point at the fake one).
GATEWAYS = ("console", "twilio")
DEFAULT_TWILIO_API = "https://api.twilio.com"
STATUS_CALLBACK_PATH = "/sms/twilio/status"
DEFAULT_SEND_RATE = 100
MAX_SEND_RATE = 10_000
# Hosts Twilio can never call back: a status callback URL on one of them is left out.
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# text: one line as a person reads it; json: one JSON object a line, for a log pipeline.
LOG_FORMATS = ("text", "json")
# GET /metrics's bearer token, when set: long enough not to be guessed.
MIN_METRICS_TOKEN = 16
# The admin's session cookie is encrypted with a key derived from KLUBB_SECRET_KEY: at least
# this many characters (`python3 -c "import secrets; print(secrets.token_urlsafe(32))"`).
MIN_SECRET_KEY = 32
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# KLUBB_DATA_DIR's folder of admin imports (an upload, its state and bad rows between the
# preview, the run and its progress page).
IMPORTS_FOLDER = "imports"


def default_data_dir() -> Path:
    """KLUBB_DATA_DIR unset: a folder in the temporary directory, as on a laptop (`make run`).
    A server sets its own: a service's temporary directory may be private and emptied at every
    stop (systemd's PrivateTmp=yes), and is never shared by two servers."""
    return Path(tempfile.gettempdir()) / "klubb"


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
    twilio_api_url: str = DEFAULT_TWILIO_API
    # Messages per second the sender hands to the gateway.
    send_rate: int = DEFAULT_SEND_RATE
    # Seconds before a row a sender claimed and never finished is settled with the gateway.
    in_doubt_after: int = 300
    run_scheduler: bool = True
    log_level: str = "INFO"
    log_format: str = "text"
    # GET /metrics wants `Authorization: Bearer <this>` when set; unset, it answers loopback
    # only (bot.metrics). Kept out of repr like the secret key.
    metrics_token: str | None = field(default=None, repr=False)
    # Where `klubb worker` serves GET /metrics (it has no web server otherwise); None: nowhere.
    metrics_port: int | None = None
    # Encrypts the admin's session cookies; None: a key made per process (sessions end at a
    # restart). Kept out of repr so settings printed in a log don't show it.
    secret_key: str | None = field(default=None, repr=False)
    # Reverse proxies whose X-Forwarded-For is believed (bot.client_address): none by default,
    # so a client can't pick the address its sign-in and page limits count against.
    trusted_proxies: tuple[Network, ...] = ()
    # Files that outlive a request and must outlive a restart: the admin's imports (uploads
    # between preview and run, a run's progress, what a resumed run goes on from). Every
    # `klubb serve` of one Klubb must see the same folder (an import's requests may reach any).
    data_dir: Path = field(default_factory=default_data_dir)

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
        log_format = env.get("KLUBB_LOG_FORMAT", "text").strip().lower()
        if log_format not in LOG_FORMATS:
            raise SettingsError(f"KLUBB_LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}")
        gateway = env.get("KLUBB_GATEWAY", "console").strip().lower()
        if gateway not in GATEWAYS:
            raise SettingsError(f"KLUBB_GATEWAY must be one of {', '.join(GATEWAYS)}")
        token = env.get("TWILIO_AUTH_TOKEN", "").strip()
        account_sid = env.get("TWILIO_ACCOUNT_SID", "").strip()
        if gateway == "twilio":
            # The dev token only suits webhooks on a laptop: sending needs the account's own.
            for name, value in (("TWILIO_ACCOUNT_SID", account_sid), ("TWILIO_AUTH_TOKEN", token)):
                if not value:
                    raise SettingsError(f"{name} must be set when KLUBB_GATEWAY is twilio")
        if not token:
            token = DEV_AUTH_TOKEN
        send_rate = _int(env, "KLUBB_SEND_RATE", DEFAULT_SEND_RATE)
        if not 1 <= send_rate <= MAX_SEND_RATE:
            raise SettingsError(
                f"KLUBB_SEND_RATE must be between 1 and {MAX_SEND_RATE} messages per second, "
                f"not {send_rate}"
            )
        outbox = env.get("KLUBB_CONSOLE_OUTBOX", "").strip()
        host = env.get("KLUBB_HOST", "127.0.0.1").strip()
        secret_key = env.get("KLUBB_SECRET_KEY", "").strip() or None
        if secret_key is not None and len(secret_key) < MIN_SECRET_KEY:
            raise SettingsError(
                f"KLUBB_SECRET_KEY must be at least {MIN_SECRET_KEY} characters "
                f"(it has {len(secret_key)})"
            )
        return cls(
            database_url=_database_url(env),
            host=host,
            port=port,
            public_url=_public_url(env, port),
            gateway=gateway,
            console_outbox=Path(outbox) if outbox else None,
            twilio_account_sid=account_sid or None,
            twilio_auth_token=token,
            twilio_api_url=env.get("TWILIO_API_URL", DEFAULT_TWILIO_API).strip().rstrip("/"),
            send_rate=send_rate,
            in_doubt_after=_in_doubt_after(env),
            run_scheduler=_on_off(env, "KLUBB_SCHEDULER", default=True),
            log_level=log_level,
            log_format=log_format,
            metrics_token=_metrics_token(env),
            metrics_port=_metrics_port(env),
            secret_key=secret_key,
            trusted_proxies=_trusted_proxies(env),
            data_dir=_data_dir(env),
        )

    @property
    def status_callback_url(self) -> str | None:
        """Where the gateway asks for status callbacks: the public URL's status route, unless
        the public URL is loopback and the gateway is Twilio's own, which could never call it
        (a fake on loopback can)."""
        host = urlsplit(self.public_url).hostname or ""
        if host in _LOOPBACK_HOSTS and self.twilio_api_url == DEFAULT_TWILIO_API:
            return None
        return self.public_url + STATUS_CALLBACK_PATH

    @property
    def imports_dir(self) -> Path:
        """The admin's imports, a folder per upload (bot.admin.transfer)."""
        return self.data_dir / IMPORTS_FOLDER

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)


def check_data_dir(settings: Settings) -> None:
    """Make KLUBB_DATA_DIR's folders if they are missing and write a file there, as `klubb
    serve` starts: SettingsError saying why it can't be used, rather than an admin's import
    failing later. Not in `from_env`, which reads and never touches the disk."""
    folder = settings.imports_dir
    try:
        # Private to Klubb's user where Klubb makes it: uploads hold members' numbers.
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".klubb-check-"):
            pass
    except OSError as exc:
        raise SettingsError(
            f"KLUBB_DATA_DIR {settings.data_dir} can't be used: can't create or write "
            f"{exc.filename or folder}: {exc.strerror or exc}. Set KLUBB_DATA_DIR to a folder "
            "Klubb's user can create and write (on a server: one that outlives a restart and "
            "that every `klubb serve` shares, e.g. /var/lib/klubb)"
        ) from None


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, not {raw!r}") from None


# What an on/off variable may say (the README's on and off, and the usual others).
_ON = ("on", "1", "true", "yes")
_OFF = ("off", "0", "false", "no")


def _on_off(env: Mapping[str, str], name: str, *, default: bool) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _ON:
        return True
    if value in _OFF:
        return False
    # A typo must not leave the scheduler on (or off) unnoticed.
    raise SettingsError(
        f"{name} must be on or off (or {'/'.join(_ON[1:] + _OFF[1:])}), not {raw!r}"
    )


def _database_url(env: Mapping[str, str]) -> str:
    """KLUBB_DATABASE_URL read as every command reads it (store.database.database_url), kept in
    its one spelling (postgres:// as postgresql://)."""
    raw = env.get("KLUBB_DATABASE_URL", DEFAULT_DATABASE).strip()
    # A SQLite file's path may hold a space; a space then # is a comment kept in the value.
    if re.search(r"\s#", raw):
        raise _commented("KLUBB_DATABASE_URL", shown_url(raw))
    try:
        parsed = database_url(raw)
    except UnsupportedDatabase as exc:
        raise SettingsError(f"KLUBB_DATABASE_URL {exc.reason}") from None
    return parsed.render_as_string(hide_password=False)


def _public_url(env: Mapping[str, str], port: int) -> str:
    """KLUBB_PUBLIC_URL: Twilio signs each webhook with the URL it calls, checked against this
    one, so a wrong one refuses every text with 403 (and makes wrong short links): refused here,
    at start-up, instead."""
    raw = env.get("KLUBB_PUBLIC_URL", f"http://127.0.0.1:{port}").strip()
    if any(c.isspace() for c in raw):
        raise _commented("KLUBB_PUBLIC_URL", raw)
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018 (a port that is not a number raises here)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(
            "KLUBB_PUBLIC_URL must be an absolute http:// or https:// address with a host "
            f"(https://klubb.example.no), not {raw!r}"
        )
    if "#" in raw or "?" in raw:
        raise SettingsError(f"KLUBB_PUBLIC_URL must have no query (?) or fragment (#), not {raw!r}")
    return raw.rstrip("/")


def _commented(name: str, shown: str) -> SettingsError:
    """A comment after a value (`URL  # the public one`) is part of the value to systemd's
    EnvironmentFile (and docker's --env-file): said plainly, not met later as a wrong URL."""
    return SettingsError(
        f"{name} contains a space: a comment on the same line? systemd keeps it as part of "
        f"the value; put the comment on a line of its own: {shown!r}"
    )


def _in_doubt_after(env: Mapping[str, str]) -> int:
    seconds = _int(env, "KLUBB_IN_DOUBT_AFTER", 300)
    if not 1 <= seconds <= 86400:
        raise SettingsError(
            f"KLUBB_IN_DOUBT_AFTER must be between 1 and 86400 seconds, not {seconds}"
        )
    return seconds


def _metrics_token(env: Mapping[str, str]) -> str | None:
    token = env.get("KLUBB_METRICS_TOKEN", "").strip()
    if not token:
        return None
    if not (token.isascii() and token.isprintable()) or " " in token:
        raise SettingsError("KLUBB_METRICS_TOKEN must be printable ASCII without spaces")
    if len(token) < MIN_METRICS_TOKEN:
        raise SettingsError(
            f"KLUBB_METRICS_TOKEN must be at least {MIN_METRICS_TOKEN} characters "
            f"(it has {len(token)})"
        )
    return token


def _metrics_port(env: Mapping[str, str]) -> int | None:
    if not env.get("KLUBB_METRICS_PORT", "").strip():
        return None
    port = _int(env, "KLUBB_METRICS_PORT", 0)
    if not 1 <= port <= 65535:
        raise SettingsError(f"KLUBB_METRICS_PORT must be between 1 and 65535, not {port}")
    return port


def _data_dir(env: Mapping[str, str]) -> Path:
    raw = env.get("KLUBB_DATA_DIR", "").strip()
    if not raw:
        return default_data_dir()
    return Path(raw).expanduser()


def _trusted_proxies(env: Mapping[str, str]) -> tuple[Network, ...]:
    """KLUBB_TRUSTED_PROXIES: addresses or networks (CIDR), comma-separated."""
    networks = []
    for part in env.get("KLUBB_TRUSTED_PROXIES", "").split(","):
        if not part.strip():
            continue
        try:
            # strict=False: 10.0.0.1/8 means the network 10.0.0.0/8, as people write it.
            networks.append(ipaddress.ip_network(part.strip(), strict=False))
        except ValueError:
            raise SettingsError(
                "KLUBB_TRUSTED_PROXIES must be IP addresses or networks (CIDR) separated by "
                f"commas, not {part.strip()!r}"
            ) from None
    return tuple(networks)
