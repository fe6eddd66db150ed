"""Merchant tooling: `miaofa-merchant`, a CLI over the merchant HTTP API (products, stock)."""
