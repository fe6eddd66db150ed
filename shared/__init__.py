"""What two or more miaofa functions need: the domain, data access, providers and settings."""
