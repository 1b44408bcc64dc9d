"""The substratus.ai API types, by version."""
