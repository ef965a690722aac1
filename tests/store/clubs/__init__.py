"""Tests of store.clubs."""
