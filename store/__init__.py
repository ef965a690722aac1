"""The domain and its tables: models, the rules that keep them consistent, the unit of work."""
