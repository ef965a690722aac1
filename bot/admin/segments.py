"""Segments (owner only): the builder with its live count; save, rename, delete."""

from __future__ import annotations

from aiohttp import web

routes = web.RouteTableDef()
