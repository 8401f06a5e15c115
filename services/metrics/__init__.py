"""The metrics service: Faust agents that turn event streams into KPI figures."""
