"""Integrations with the tools a service already runs (Sentry, ...), imported only on use."""
