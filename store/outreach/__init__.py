"""Outreach: segments, campaigns, journeys, guard rails, the outbox, messages and receipts."""
