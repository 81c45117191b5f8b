"""Ferry's services. Each is a separate process (``python -m services.<name>``) talking over NATS."""
