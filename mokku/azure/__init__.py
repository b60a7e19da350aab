"""Azure OpenAI's routes on mokku's core: deployments with ``api-version``, and the v1 API."""
