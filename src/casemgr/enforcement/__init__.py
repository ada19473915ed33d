"""Enforcement after a confirmed violation: warnings, and revocation proposals with two sign-offs."""
