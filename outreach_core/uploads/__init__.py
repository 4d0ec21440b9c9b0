"""Uploads: landing raw files, and the ingestion stages the Dagster assets run."""
