"""Plans, subscriptions and usage: built by the billing issue."""
