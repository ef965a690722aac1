"""Typed application keys: how handlers reach the app's resources (never module globals)."""

from __future__ import annotations

import asyncio

from aiohttp import web
from twilio.request_validator import RequestValidator

from bot.api.auth import KeyCache
from bot.settings import Settings
from scheduler.gateway import Gateway
from store.clubs.directory import ClubDirectory
from store.database import Database
from store.outreach.inbox import UnansweredCounts

SETTINGS = web.AppKey("settings", Settings)
DB = web.AppKey("db", Database)
GATEWAY = web.AppKey("gateway", Gateway)
VALIDATOR = web.AppKey("validator", RequestValidator)
CLUBS = web.AppKey("clubs", ClubDirectory)
API_KEYS = web.AppKey("api_keys", KeyCache)
# The inbox's unanswered count per club, shown on every admin page (bot.admin.inbox).
INBOX_COUNTS = web.AppKey("inbox_counts", UnansweredCounts)
# The member imports this process runs (bot.admin.transfer), awaited at shutdown.
IMPORTS = web.AppKey("imports", set[asyncio.Task[None]])
