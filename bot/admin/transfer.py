"""Import and export (owner only): members from a CSV, and CSV exports streamed."""

from __future__ import annotations

from aiohttp import web

routes = web.RouteTableDef()
