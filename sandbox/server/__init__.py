"""The sandbox API server: an aiohttp application speaking the Kubernetes REST protocol.

``app.py`` routes requests, ``objects.py`` holds the write semantics shared by HTTP handlers and
controllers, ``storage.py`` is the versioned object store with its event log.
"""
