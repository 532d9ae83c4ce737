"""The bgtask demo app (a plain WSGI placeholder until the Flask demo lands)."""
