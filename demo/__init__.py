"""The demo service: a real HTTP service that reports its own GC and request stats."""
