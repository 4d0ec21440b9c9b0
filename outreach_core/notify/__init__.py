"""Team notifications: an outbox of posts to the team's Slack-compatible incoming webhook."""
