"""Data access: the only place PynamoDB models live. Callers get domain models back."""
