"""Tests of store.members."""
