"""The merchant's web admin under /admin: server-rendered pages on the store's own functions."""

from __future__ import annotations

from bot.admin.app import add_admin

__all__ = ["add_admin"]
