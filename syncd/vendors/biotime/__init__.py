"""ZKTeco BioTime (iclock terminals and transactions): client and models."""

from syncd.vendors.biotime.client import BioTimeClient
from syncd.vendors.biotime.models import Area, CommandResult, Page, Terminal, Transaction

__all__ = ["Area", "BioTimeClient", "CommandResult", "Page", "Terminal", "Transaction"]
