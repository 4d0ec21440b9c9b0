"""Inbound replies and calls: routing to the team, storage before processing, opt-outs
first, classification, the inbox with response buckets, conversations, auto-replies under
the guardrails, reviews of drafted replies and email deliverable jobs. All state is in
PostgreSQL; nothing depends on process memory."""
