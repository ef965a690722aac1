"""The edges: the aiohttp app, Twilio webhooks, SMS gateways and the `klubb` command."""
