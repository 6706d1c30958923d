"""The web console: static pages, a same-origin sign-in and a read-only reverse proxy to the three APIs."""
