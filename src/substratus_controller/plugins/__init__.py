"""kubectl plugins: `kubectl applybuild` and `kubectl notebook`."""
