"""Top-level jobs behind the CLI commands (run, optimize, calibrate)."""
