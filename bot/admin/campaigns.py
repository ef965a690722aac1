"""Campaigns (owner only): compose, preview, send or schedule, cancel, and the report."""

from __future__ import annotations

from aiohttp import web

routes = web.RouteTableDef()
