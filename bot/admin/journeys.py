"""Journeys (owner only): each automated journey on or off, its texts and its setting."""

from __future__ import annotations

from aiohttp import web

routes = web.RouteTableDef()
