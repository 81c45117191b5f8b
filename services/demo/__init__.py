"""`make demo`: Ferry's main job on one machine — real NATS, real S3, two sandbox clusters."""
