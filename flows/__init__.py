"""The conversation: a member's text in, replies and effects out; no HTTP, no network."""
