"""Reference data every service reads: departments and rate cards (store and routes)."""
