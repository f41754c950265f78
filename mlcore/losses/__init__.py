"""One loss per module."""
