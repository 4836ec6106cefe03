"""Checking against the reference interpreter (LiteRT in a subprocess): verify, segments, compare."""
