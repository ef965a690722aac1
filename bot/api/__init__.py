"""The REST API for tills and web shops under /api/v1 (routes in bot.api.routes)."""
