"""What the team spends: one ledger of real costs and one reservation mechanism (a worst
case set aside before a paid call) for every cost category, checked against the team's
monthly caps and a campaign's budget."""
