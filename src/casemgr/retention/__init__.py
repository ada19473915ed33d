"""Retention: what the bureau may keep, and for how long (`casemgr retention run`)."""
