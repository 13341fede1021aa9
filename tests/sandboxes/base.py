"""The sandbox base for this repository's API sandboxes (the shared one in `connector.testing`)."""

from connector.testing.sandbox import Fault, FaultPlan, Reply, Request, Sandbox

__all__ = ["Fault", "FaultPlan", "Reply", "Request", "Sandbox"]
