"""The embedded Linksfield sandbox: a real HTTP server speaking API contract v1."""
