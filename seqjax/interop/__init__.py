"""Weight converters from and to other frameworks (no framework import needed)."""
