"""Repairs of aiortc and aioice: each module replaces or patches one upstream behaviour (its
docstring says which) and can be deleted once upstream changes it."""
