"""``ferry-mover``: the Job-side command that backs up and restores volumes (see README.md)."""
