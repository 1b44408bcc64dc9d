"""Conditions helpers and the pure "what is my status" functions. No I/O."""
