"""``python -m services.gateway``: settings, logs, the token check, then serve until SIGTERM."""

from services.gateway.service import main

main()
