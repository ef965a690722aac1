"""Tests of the klubb command (bot/cli)."""
