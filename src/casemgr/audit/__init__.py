"""The tamper-evident audit trail: recording, reading and verifying the hash chain."""

from casemgr.audit.service import record, record_in_own_transaction
from casemgr.audit.verify import ChainReport, verify_chain

__all__ = ["ChainReport", "record", "record_in_own_transaction", "verify_chain"]
