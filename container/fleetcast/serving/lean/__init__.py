"""The lean multi-model server: app.py (the WSGI views), worker_cache.py (each worker's models),
registry.py (the store every worker shares), budget.py (the memory budget), warm_up.py, runner.py
(gunicorn)."""
