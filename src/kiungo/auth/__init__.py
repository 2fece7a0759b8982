"""Authentication: the OAuth2 token endpoint and bearer tokens for systems; operator accounts."""
