"""The ``ferry`` command: submit, follow and manage mobility requests; run a local sandbox.

It talks to the gateway over HTTP (``FERRY_URL`` + ``FERRY_TOKEN``) or straight to NATS
(``--bus nats://...``) with the same contract. See README.md in this folder.
"""
