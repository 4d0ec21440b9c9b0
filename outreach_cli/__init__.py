"""Entry points: the `outreach` CLI, the demo, `outreach dev` and the Dagster instance
configuration they write. They sit above the layers they start."""
