"""Fixed baselines, served under exactly the gunicorn settings mokku uses."""
