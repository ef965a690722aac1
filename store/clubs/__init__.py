"""Clubs: their settings and numbers, admin accounts, API keys and extra earning rules."""
