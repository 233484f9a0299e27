"""The review console: pages for fraud teams, served by the service itself.

Plain HTML, CSS and JavaScript in ``static/`` (no build step, no CDN); the JSON it
reads comes from :mod:`api.routes.console`, which authenticates with the same API
keys and scopes as ``/v1`` through a login form and an HttpOnly session cookie.
"""
