"""Tests of store.loyalty."""
