"""Tests of store.outreach."""
