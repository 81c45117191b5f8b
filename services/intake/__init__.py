"""The intake service: accepts mobility requests on the bus, answers state queries, cancels."""
