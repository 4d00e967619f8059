"""The instance and what it reads: the instances file, its recipe, the app's config, secrets and files."""
