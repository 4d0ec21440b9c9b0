"""Inbound replies: opt-out/opt-in/help keywords and a rules-as-data reply classifier (pure)."""
