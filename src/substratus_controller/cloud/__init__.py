"""Cloud drivers behind one interface (local, GCP, AWS) and their GPU placement tables.

Drivers do not import each other.
"""
