"""Background work: the outbox sender (and later the planner, journeys and expiry)."""
