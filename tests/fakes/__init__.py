"""Fakes of the services Klubb talks to, run on loopback for tests and benches."""
