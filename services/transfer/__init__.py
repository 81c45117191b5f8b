"""The transfer service: copies a Ferry snapshot between regions' repositories (see README.md)."""
