"""The alerts service: evaluates targets, keeps alert history, notifies on-call."""
